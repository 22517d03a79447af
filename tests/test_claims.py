"""Claims as data: every number the landing page, the CIFAR tutorial and bench/README.md state about a trained run is
recomputed here from the published runs (`checkpoints/<set>/<run>/metrics.json`, `history.json`) and must appear in
the page's text as stated. A re-published run that moves a number fails this test until the words follow it.

Each claim is a template; its fields are computed from the published files; the formatted text must occur in every
page listed (whitespace and line breaks normalised, markdown emphasis dropped)."""
import json, re
from pathlib import Path
import pytest
from pages import page_text, norm   # tests/pages.py: a page's prose as the claim tests read it

ROOT = Path(__file__).resolve().parent.parent
CK = ROOT / 'checkpoints' / 'cifar10'


def metrics(run:str) -> dict: return json.loads((CK / run / 'metrics.json').read_text())
def acc(run:str) -> float: return 100 * metrics(run)['accuracy']


def dense_macs(depth:int, shortcut:str='A') -> float:
    from bsgate.models.resnet import cifar_resnet
    from bsgate.macs import dense_macs as dm
    return dm(cifar_resnet(depth, shortcut=shortcut), (3, 32, 32))


def mcnemar(a:str, b:str) -> tuple:
    "(right only for a, right only for b, McNemar's exact two-sided p) from the runs' committed hold-out predictions"
    from scipy.stats import binomtest
    pa, pb = (json.loads((CK / n / 'valid_preds.json').read_text()) for n in (a, b))
    assert pa['target'] == pb['target'] and pa['n'] == len(pa['pred']) == 5000
    for n, d in ((a, pa), (b, pb)):   # the predictions are the published model's: they give its accuracy
        # (scored in fp32; a bf16 run's metrics.json was validated under bf16 autocast: a few images may differ)
        tol = 2e-3 if json.loads((CK / n / 'config.json').read_text()).get('precision') == 'bf16' else 1e-6
        assert abs(sum(p == t for p, t in zip(d['pred'], d['target'])) / d['n'] - metrics(n)['accuracy']) < tol, n
    oa = sum(x == t and y != t for x, y, t in zip(pa['pred'], pb['pred'], pa['target']))
    ob = sum(y == t and x != t for x, y, t in zip(pa['pred'], pb['pred'], pa['target']))
    return oa, ob, binomtest(oa, oa + ob, 0.5).pvalue


def values() -> dict:
    r20 = dense_macs(20)
    gap = lambda a, b: round(acc(a) - acc(b), 1)
    h25 = [100 * e['accuracy'] for e in json.loads((CK / 'r32_bas25' / 'history.json').read_text())]
    return dict(
        r20_dense=acc('r20_dense'), r32_bas=acc('r32_bas'), r32_bas_pct=100 * metrics('r32_bas')['macs'] / r20,
        gap15=gap('r20_dense', 'r32_bas'), gap5=gap('r20_dense5', 'r32_bas5'), gap8=gap('r20_dense8', 'r32_bas8'),
        gap25=gap('r20_dense25', 'r32_bas25'), r32_bas25=acc('r32_bas25'), r20_dense25=acc('r20_dense25'),
        r32_bas25_frac=metrics('r32_bas25')['macs'] / r20, last7_lo=min(h25[-7:]), last7_hi=max(h25[-7:]),
        gap15_25=round(gap('r20_dense', 'r32_bas') - gap('r20_dense25', 'r32_bas25'), 1),
        ft_diff=round(acc('r32_ft_bas') - acc('r32_ft_l0'), 1),
        r56_l0=acc('r56_ft_l0'), r56_bas=acc('r56_ft_bas'),
        r56_l0_m=metrics('r56_ft_l0')['macs'] / 1e6, r56_bas_m=metrics('r56_ft_bas')['macs'] / 1e6,
        gn8=acc('gaternet_r20_8'), d8=acc('r20_dense8'), gn15=acc('gaternet_r20'),
        gn8_nol1_gap=round(acc('r20_dense8') - acc('gaternet_r20_8_nol1'), 1),
        ft32_gap=gap('r20_dense', 'r32_ft_bas'), ft32_pct=100 * metrics('r32_ft_bas')['macs'] / r20,
        ft56_gap=gap('r20_dense', 'r56_ft_bas'), ft56_pct=100 * metrics('r56_ft_bas')['macs'] / r20,
        ft_only=mcnemar('r32_ft_bas', 'r32_ft_l0')[:2], ft_p=mcnemar('r32_ft_bas', 'r32_ft_l0')[2],
        t25_only=mcnemar('r20_dense25', 'r32_bas25')[:2], t25_p=mcnemar('r20_dense25', 'r32_bas25')[2],
        n_published=sum(1 for d in CK.iterdir() if (d / 'metrics.json').is_file()),
        bf16_g=acc('r32_bas_bf16'), bf16_g_m=metrics('r32_bas_bf16')['macs'] / 1e6, r32_bas_m=metrics('r32_bas')['macs'] / 1e6,
        bf16_only=mcnemar('r32_bas', 'r32_bas_bf16')[:2], bf16_p=mcnemar('r32_bas', 'r32_bas_bf16')[2],
        d20_only=mcnemar('r20_dense', 'r20_dense_bf16')[:2], d20_p=mcnemar('r20_dense', 'r20_dense_bf16')[2],
        d20_bf16=acc('r20_dense_bf16'),
        **front_values(),
    )


def front_values() -> dict:
    "The front's first gated point (R-32 BaS @0.50) against the dense curve, from the published runs"
    from bsgate.analysis import accuracy_macs_front
    v = accuracy_macs_front(_study().front_arms())['R-32 BaS @0.50']
    return dict(f50_acc=100 * v['accuracy'], f50_m=v['macs'] / 1e6, f50_frac=v['macs'] / dense_macs(20),
                f50_curve=100 * v['dense_curve'], f50_below=-100 * v['above_curve'], f50_seeds=len(v['runs']))


INDEX = ('README.md', 'nbs/index.ipynb')
TUTORIAL = ('nbs/tutorials/cifar10.ipynb',)
BENCH = ('bench/README.md',)
CLAIMS = [   # (template, pages)
    ("{gap5:.1f}, {gap8:.1f}, {gap15:.1f} and {gap25:.1f} points after 5, 8, 15 and 25 epochs (25 epochs: {r32_bas25:.1f}% against {r20_dense25:.1f}%)", INDEX),
    ("are {ft_diff:.1f} points apart (one run each; McNemar's test on the 5,000 hold-out images: p = {ft_p:.2f}, no difference shown)", INDEX),
    ("(one run each; McNemar's test on the hold-out images: p = {ft_p:.2f}, no difference shown;", TUTORIAL),
    ("{ft_only[0]} are right only with batch-shaping and {ft_only[1]} only without (McNemar's exact test p = {ft_p:.2f};", BENCH),
    ("{t25_only[0]} images right only for the dense network against {t25_only[1]}: p = {t25_p:.0e}", BENCH),
    ("{gn8:.1f}% against {d8:.1f}% after 8 epochs and {gn15:.1f}% against {r20_dense:.1f}% after 15", INDEX),
    ("the {n_published} finished study runs are published", INDEX),
    ("the gap is {gap5:.1f}, {gap8:.1f}, {gap15:.1f} and {gap25:.1f} points", TUTORIAL),
    ("the gap narrowed by only {gap15_25:.1f} points", TUTORIAL),
    ("ended at {r32_bas25:.1f}% (after the BatchNorm recalibration) against the dense ResNet-20's {r20_dense25:.1f}%, within {last7_lo:.1f}–{last7_hi:.1f}% over its last seven epochs", TUTORIAL),
    ("ResNet-32s are {ft_diff:.1f} points apart", TUTORIAL),
    ("is {gap15:.1f} points below the dense ResNet-20 at {r32_bas_pct:.0f}% of its MACs; fine-tuned for 5 epochs from the dense "
     "ResNet-32 it is {ft32_gap:.1f} points below at {ft32_pct:.0f}%, and the ResNet-56 fine-tuned the same way {ft56_gap:.1f} points "
     "below at {ft56_pct:.0f}%", TUTORIAL),
    ("collapsed ({r56_l0:.1f}% against {r56_bas:.1f}%, at {r56_l0_m:.1f} M against {r56_bas_m:.1f} M MACs", TUTORIAL),
    ("25 epochs, {r20_dense25:.1f}% against {r32_bas25:.1f}% ({r32_bas25_frac:.3f}), {gap25:.1f}", BENCH),
    ("From 15 to 25 epochs the gap shrank by only {gap15_25:.1f} points: the 25-epoch gated run validated within {last7_lo:.1f}–{last7_hi:.1f}%", BENCH),
    ("66.0% against 33.7%, not at the same cost** ({r56_bas_m:.2f} M against\n  {r56_l0_m:.2f} M MACs", BENCH),
    ("the gated ResNet-32 in bf16 reached {bf16_g:.1f}% at {bf16_g_m:.2f} M MACs against fp32's {r32_bas:.1f}% at {r32_bas_m:.2f} M "
     "({bf16_only[0]} hold-out images right only in fp32, {bf16_only[1]} only in bf16: McNemar p = {bf16_p:.3f})", BENCH),
    ("its first gated point, ResNet-32 held to half of ResNet-20's MACs, landed at {f50_m:.2f} M MACs ({f50_frac:.3f} of "
     "ResNet-20) and is {f50_below:.1f} points below the dense curve there ({f50_acc:.1f}% against {f50_curve:.1f}%; one seed)",
     INDEX + TUTORIAL + BENCH),
    ("the dense ResNet-20 in bf16 reached {d20_bf16:.1f}% against fp32's {r20_dense:.1f}% ({d20_only[0]} against {d20_only[1]} "
     "images: p = {d20_p:.2f})", BENCH),
]




@pytest.mark.parametrize('template,pages', CLAIMS, ids=[c[0][:40] for c in CLAIMS])
def test_claim_follows_the_published_runs(template, pages):
    want = norm(template.format(**values()))
    for page in pages:
        assert want in page_text(page), f"{page} does not state, from the published runs: {want!r}"


def test_differences_stated_follow_the_tests():
    "'no difference shown' only where McNemar's p > 0.05; a gap called real only where p < 0.05"
    v = values()
    assert v['ft_p'] > 0.05 and v['t25_p'] < 0.05, (v['ft_p'], v['t25_p'])


def test_seed_counts_stated_follow_the_runs():
    "'one seed' for the front's first gated point only while one seed of it is published"
    if 'below the dense curve there' in page_text(INDEX[1]): assert values()['f50_seeds'] == 1, values()['f50_seeds']


def test_the_claims_can_fail():
    "A changed number is caught: the check is not vacuous"
    v = values()
    template = next(c for c, pages in CLAIMS if '{gap25' in c and pages == INDEX)
    want = norm(template.format(**{**v, 'gap25': v['gap25'] + 1}))
    assert want not in page_text('nbs/index.ipynb')


def test_refuted_extrapolation_is_gone():
    "The 25-epoch run refuted 'closes between 17 and 27 epochs': no page may state it as a prediction"
    for page in INDEX + TUTORIAL + BENCH:
        t = page_text(page)
        assert 'closes, by extrapolation' not in t and 'Extrapolated, not measured: the gap closes' not in t, page


def _study():
    import sys
    sys.path.insert(0, str(ROOT / 'bench'))
    import cifar_study
    return cifar_study


def test_front_table_follows_the_published_runs():
    "bench/README.md's front table is what the published 30-epoch runs give (`cifar_study.py --front` writes it)"
    from bsgate.analysis import accuracy_macs_front
    cs = _study()
    start, end = cs.FRONT_MARK
    text = (ROOT / 'bench' / 'README.md').read_text()
    got = text[text.index(start) + len(start):text.index(end)].strip()
    arms = cs.front_arms()
    assert 'R-8 dense' in arms and 'R-14 dense' in arms, sorted(arms)
    assert got == cs.front_table(accuracy_macs_front(arms)), "bench/README.md's front table is stale: run cifar_study.py --front"
    from PIL import Image
    drawn = Image.open(ROOT / 'bench' / 'figures' / 'front.png').text.get('Description')   # what the figure plots (cifar_study.py --front)
    assert drawn is not None, "bench/figures/front.png records no plotted values: run cifar_study.py --front"
    assert json.loads(drawn) == cs.front_points(accuracy_macs_front(arms)), "bench/figures/front.png is stale: run cifar_study.py --front"


def test_front_words_follow_the_front():
    "A gated arm is called above the dense curve only where it is, by more than its seeds' spread"
    from bsgate.analysis import accuracy_macs_front
    fr = accuracy_macs_front(_study().front_arms())
    above = [k for k, v in fr.items() if v['gated'] and v.get('above_curve') is not None and v['above_curve'] > v['spread'] > 0]
    for page in INDEX + TUTORIAL + BENCH:
        t = page_text(page)
        if not above: assert 'above the dense curve at 30 epochs' not in t, page


def test_front_status_follows_the_published_runs():
    "The tutorial says no gated arm of the front is published exactly as long as that is true"
    from bsgate.analysis import accuracy_macs_front
    fr = accuracy_macs_front(_study().front_arms())
    says_none = 'No gated arm of the front is published yet' in page_text(TUTORIAL[0])
    assert says_none == (not any(v['gated'] for v in fr.values())), (says_none, sorted(fr))


# The tutorials' published runs (`bench/train_runs.py NAME --publish`: config, history, metrics, train_run.json and the
# GateRecord of the validation images, bench/published/<name>/): the ImageNet and Cityscapes tutorials' numbers.
PUB = ROOT / 'bench' / 'published'
IMNET, CITY = ('nbs/tutorials/imagenet.ipynb',), ('nbs/tutorials/cityscapes.ipynb',)


def _minus(x:float, spec:str) -> str: return format(x, spec).replace('-', '−')   # the pages' minus sign


def tutorial_values(name:str) -> dict:
    import torch
    from bsgate.analysis import GateRecord, summary
    d = PUB / name
    m, run = (json.loads((d / f).read_text()) for f in ('metrics.json', 'train_run.json'))
    rec = GateRecord.load(d / 'gates_val.pt')
    h = [r['train_loss'] for r in json.loads((d / 'history.json').read_text())]
    v = dict(m=m, n=rec.n, m_dense=rec.dense / 1e6, minutes=run['wall_s'] / 60, cpu=run['machine']['cpu'], epochs=m['epochs'],
             tl_end=h[-1], tl_lo=min(h[2:]), tl_hi=max(h[2:]))   # training loss: the last epoch's, and its range from epoch 3 on
    if (w := d / 'reland_whole.json').is_file():   # the final phase again, landing on whole images (train_runs.py --reland)
        r = json.loads(w.read_text())['metrics']
        c1, c2 = r['budget']['calibration']
        v.update(w_shift1=c1['shift'], w_before2=c2['before'], w_after2=c2['after'], w_rounds2=c2['rounds'],
                 w_landed=r['budget']['landed'], w_miou=r['miou'])
    if (w := d / 'reland_whole_bn.json').is_file():   # the same, BatchNorm recalibrated on the whole images too
        r = json.loads(w.read_text())['metrics']
        v.update(wb_landed=r['budget']['landed'], wb_rel=100 * (r['budget']['landed'] / r['budget']['target'] - 1), wb_miou=r['miou'],
                 wb_after2=r['budget']['calibration'][-1]['after'], wb_rounds2=r['budget']['calibration'][-1]['rounds'])
    if not rec.names: return v   # a dense control: no gates, every image at the dense cost
    s = summary(rec)
    cor, g, b = s['correlations'], s['gates'], m.get('budget')   # no budget: the control with the gates trained freely
    p = torch.cat([q.float().flatten() for q in rec.probs])
    return dict(v, b=b, cal_after=b and b['calibration'][-1]['after'], gates=sum(p.shape[1] for p in rec.probs), s=s,
                mid=100 * ((p > 0.1) & (p < 0.9)).float().mean().item(),
                lo=s['macs_min'] / 1e6, hi=s['macs_max'] / 1e6, lo_g=s['macs_min'] / 1e9, hi_g=s['macs_max'] / 1e9,
                lo_f=100 * s['macs_min'] / rec.dense, hi_f=100 * s['macs_max'] / rec.dense,
                rho_loss=_minus(cor['loss']['spearman'], '.2f'), rho_conf=_minus(cor['confidence']['spearman'], '.2f'),
                rho_loss_v=cor['loss']['spearman'], cond=100 * g['conditional'], always_off=100 * g['always_off'],
                always_on=100 * g['always_on'])


TUTORIAL_CLAIMS = [   # (published run, template, pages)
    ('imagenette_r18_t50', "for {epochs} epochs, with the budget at half of its dense MACs (`mac_target=0.5`, λ = 1) and "
     "bf16 autocast, {minutes:.0f} minutes on one core of a 2-core {cpu}", IMNET),
    ('imagenette_r18_t50', "The run landed at {b[landed]:.3f} of its dense MACs against the target {b[target]} (the gates as "
     "trained opened {b[as_trained]:.3f};", IMNET),
    ('imagenette_r18_t50', "every one of the {gates:,} gates is on for some of the {n} images and off for others, and the "
     "cost per image spreads from {lo:.0f} M to {hi:.0f} M MACs ({lo_f:.0f}–{hi_f:.0f}% of dense)", IMNET),
    ('imagenette_r18_t50', "{m[accuracy]:.1%} on ten classes is far from a trained network", IMNET),
    ('imagenette_r18_dense', "The same ResNet-18 without gates, trained alike (`bench/published/imagenette_r18_dense`), "
     "reached {m[accuracy]:.1%} at its full {m_dense:.0f} M MACs", IMNET),
    ('imagenette_r18_free', "kept its gates open ({m[mac_frac]:.3f} of dense MACs) and reached {m[accuracy]:.1%} against", IMNET),
    ('imagenette_r18_dense', "against the dense network's {m[accuracy]:.1%} (one run each;", IMNET),
    ('imagenette_r18_t50', "the gated network's training loss stays between {tl_lo:.2f} and {tl_hi:.2f} (its last epoch {tl_end:.2f};", IMNET),
    ('imagenette_r18_dense', "the dense network's {tl_end:.2f}, the open-gated", IMNET),
    ('imagenette_r18_free', "the open-gated control's {tl_end:.2f})", IMNET),
    ('imagenette_r18_t50', "{mid:.0f}% of its gate probabilities on these {n} images lie between 0.1 and 0.9", IMNET),
    ('camvid_pspnet_r18_t60', "needed a shift of {w_shift1:.1f} logits to reach the target on whole training images, found them "
     "costing {w_before2:.3f} after the BatchNorm recalibration, had reached only {w_after2:.3f} when its second landing stopped "
     "after {w_rounds2} rounds, and cost {w_landed:.3f} of dense on the validation images, with mIoU {w_miou:.3f}", CITY),
    ('camvid_pspnet_r18_t60', "landed the validation images at {wb_landed:.3f} of dense (target {b[target]}, {wb_rel:+.1f}%) with mIoU "
     "{wb_miou:.3f}, against the published run's {m[miou]:.3f} at {b[landed]:.3f}. But its second landing had not converged "
     "({wb_after2:.3f} on the training images after {wb_rounds2} rounds)", CITY),
    ('imagenette_r18_t50', "On these {n} images the cost rises weakly with the loss (Spearman ρ = {rho_loss}) and falls "
     "with the confidence (ρ = {rho_conf})", IMNET),
    ('camvid_pspnet_r18_t60', "for {epochs} epochs, with the budget at 0.6 of its dense MACs (`mac_target=0.6`, λ = 1) and "
     "bf16 autocast, {minutes:.0f} minutes on one core of a 2-core {cpu}", CITY),
    ('camvid_pspnet_r18_t60', "The gates are conditional: {cond:.0f}% of the {gates:,} gates are on for some images and off for "
     "others ({always_on:.0f}% always on, {always_off:.0f}% always off), and the cost per image spreads from {lo_g:.1f} to "
     "{hi_g:.1f} GMACs ({lo_f:.0f}–{hi_f:.0f}% of dense)", CITY),
    ('camvid_pspnet_r18_t60', "here 192-pixel crops, where it reached {cal_after:.3f} of the dense MACs — "
     "but on whole 480×360 images the same thresholds cost {b[landed]:.3f}", CITY),
    ('camvid_pspnet_r18_t60', "mIoU {m[miou]:.3f}", CITY),
    ('camvid_pspnet_r18_t60', "Here the cost falls as the loss rises (Spearman ρ = {rho_loss}): on these {n} images", CITY),
    ('imagenette_r18_t50', "lands: {b[landed]:.3f} against {b[target]} in the ImageNet tutorial's run", CITY),
]


@pytest.mark.parametrize('name,template,pages', TUTORIAL_CLAIMS, ids=[f"{c[0]}:{c[1][:30]}" for c in TUTORIAL_CLAIMS])
def test_tutorial_claim_follows_its_published_run(name, template, pages):
    v = tutorial_values(name)
    want = norm(template.format(**v))
    for page in pages:
        assert want in page_text(page), f"{page} does not state, from bench/published/{name}: {want!r}"


def test_tutorial_words_follow_the_correlations():
    "'harder images get more channels' only where the record's MACs rise with the loss; 'every one of the gates' conditional only where all are"
    v = tutorial_values('imagenette_r18_t50')
    if 'harder images to get more channels' in page_text(IMNET[0]): assert v['rho_loss_v'] > 0, v['rho_loss']
    if v['gates'] and v['cond'] < 100: assert 'every one of the' not in page_text(IMNET[0])
    c = tutorial_values('camvid_pspnet_r18_t60')   # the Cityscapes page says the cost falls with the loss: true only while ρ < 0
    if 'the cost falls as the loss rises' in page_text(CITY[0]): assert c['rho_loss_v'] < 0, c['rho_loss']
    if 'not land on its target' in page_text(CITY[0]):
        assert abs(c['b']['landed'] / c['b']['target'] - 1) > 0.03, c['b']


def test_free_gates_control_is_paired_on_the_recorded_images():
    "The ImageNet tutorial's open-gated control against the dense run: McNemar's exact test on the images both records hold"
    from scipy.stats import binomtest
    from bsgate.analysis import GateRecord
    a, b = (GateRecord.load(PUB / n / 'gates_val.pt') for n in ('imagenette_r18_free', 'imagenette_r18_dense'))
    assert a.n == b.n and bool((a.targets == b.targets).all()), "the two records must hold the same images"
    only_a, only_b = int(((a.correct == 1) & (b.correct == 0)).sum()), int(((a.correct == 0) & (b.correct == 1)).sum())
    p = binomtest(only_a, only_a + only_b).pvalue
    want = norm(f"on the {a.n} images recorded here {only_a} are right only with the gates and {only_b} only without, "
                f"McNemar p = {p:.2f}: no difference shown")
    assert want in page_text(IMNET[0]), want
    assert p > 0.05, p   # 'no difference shown' only while the test shows none


# The front page's results table: generated from the published runs (`python tests/test_claims.py` rewrites it in
# nbs/index.ipynb; `python tests/test_docs.py` then regenerates README.md), checked here.
RESULTS_MARK = ('<!-- results table: python tests/test_claims.py -->', '<!-- end of results table -->')
RESULTS_ROWS = [   # (published run, what it is)
    ('r20_dense', 'dense ResNet-20'), ('r32_bas', 'gated ResNet-32 from scratch, budget 0.95 × ResNet-20'),
    ('r20_dense25', 'dense ResNet-20'), ('r32_bas25', 'gated ResNet-32 from scratch, budget 0.95 × ResNet-20'),
    ('r32_ft_bas', 'dense ResNet-32 (10 epochs), gated and fine-tuned with batch-shaping + budget'),
    ('r32_ft_l0', 'the same with the budget alone (γ = 0)'),
    ('gaternet_r20', 'GaterNet-R20, its own recipe'),
    ('r8_dense30', 'dense ResNet-8'), ('r8_dense30_s2', 'dense ResNet-8, second seed'), ('r14_dense30', 'dense ResNet-14'), ('r20_dense30', 'dense ResNet-20'),
    ('r32_bas30_t50', 'gated ResNet-32 from scratch, budget 0.5 × ResNet-20 (landed)'),
]


def results_table() -> str:
    r20 = dense_macs(20)
    rows = []
    for run, what in RESULTS_ROWS:
        if not (CK / run / 'metrics.json').is_file(): continue
        m, c = metrics(run), json.loads((CK / run / 'config.json').read_text())
        epochs = c['epochs'] + (json.loads((CK / Path(c['init']).name / 'config.json').read_text())['epochs'] if c.get('init') else 0)
        macs = m.get('macs') or dense_macs(c['depth'], c.get('shortcut', 'A'))
        rows.append(f"| [`{run}`](https://github.com/bsgate/bsgate/tree/main/checkpoints/cifar10/{run}) | {what} | {epochs} | {c.get('precision') or 'fp32'} | "
                    f"{100 * m['accuracy']:.1f}% | {macs / 1e6:.1f} M ({macs / r20:.2f}) |")
    return ("| run | network | epochs | precision | accuracy | MACs/image (of dense ResNet-20) |\n"   # dashes: column widths
            "|--------------|------------------------------------------|------|---------|--------|----------------|\n"
            + "\n".join(rows))


def _index_block(text:str) -> str:
    start, end = RESULTS_MARK
    return text[text.index(start) + len(start):text.index(end)].strip()


def test_results_table_follows_the_published_runs():
    text = '\n'.join(''.join(c['source']) for c in json.loads((ROOT / 'nbs' / 'index.ipynb').read_text())['cells'])
    assert _index_block(text) == results_table(), "nbs/index.ipynb's results table is stale: run python tests/test_claims.py"


if __name__ == '__main__':
    p = ROOT / 'nbs' / 'index.ipynb'
    nb = json.loads(p.read_text())
    start, end = RESULTS_MARK
    cell = next(c for c in nb['cells'] if start in ''.join(c['source']))
    s = ''.join(cell['source'])
    s = s[:s.index(start)] + start + '\n' + results_table() + '\n' + end + s[s.index(end) + len(end):]
    cell['source'] = s.splitlines(keepends=True)
    p.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    print(f"wrote the results table into {p}")
