"The gated networks' constructors, as `torchvision.models` offers them: `from bsgate.models import cifar_resnet`"
# Written by hand (nbdev does not generate this file); nbs/06c_models.gaternet.ipynb tests that it re-exports them all.
from .resnet import (GatedResNet, cifar_resnet, imagenet_resnet, resnet18, resnet34, resnet50, gated_resnet18, gated_resnet34,
                     gated_resnet50, from_torchvision)
from .pspnet import PSPNet, pspnet_loss
from .gaternet import GaterNet

__all__ = ['GatedResNet', 'cifar_resnet', 'imagenet_resnet', 'resnet18', 'resnet34', 'resnet50', 'gated_resnet18', 'gated_resnet34',
           'gated_resnet50', 'from_torchvision',
           'PSPNet', 'pspnet_loss', 'GaterNet']
