"Datasets and DataLoaders: CIFAR-10 (host or device pipeline), ImageNet-style folders, Cityscapes/CamVid"
import warnings
with warnings.catch_warnings():  # fastai.layers applies `torch.jit.script` at import, which PyTorch >= 2.10 deprecates with a
    # FutureWarning on every program start: quiet for this first fastai import only (as `bsgate.callbacks` does)
    warnings.filterwarnings('ignore', message=r'`torch\.jit\.script` is deprecated', category=FutureWarning)
    import fastai.layers  # noqa: F401
