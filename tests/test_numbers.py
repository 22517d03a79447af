"""Numbers as data, for what is not a trained run (issue 26 item 2; the trained runs' numbers are `test_claims.py`'s):
every benchmark figure or MAC count that the site's pages quote in prose comes from one place, and must appear in each
page's text as that place gives it.

The one place for a measurement is `bench/README.md` itself: its tables are what the benchmark scripts printed, so a
table cell (picked by its `##`/`###` heading, the table's order under it, and row and column labels) is the source,
and a page — bench/README.md's own prose included — that rounds it differently from the template fails. A MAC count,
gate count or library constant is computed from `bsgate` here. Each claim is a template whose fields are computed from
those sources; the formatted text must occur in every page listed (whitespace and line breaks normalised, markdown
emphasis dropped). Where two pages round one value differently, each template rounds the same source value."""
import json, re
from decimal import Decimal, ROUND_HALF_UP
from functools import lru_cache
from pathlib import Path
import pytest
from pages import page_text, norm   # tests/pages.py: a page's prose as the claim tests read it

ROOT = Path(__file__).resolve().parent.parent
BENCH_MD = ROOT / 'bench' / 'README.md'


# ---- bench/README.md as tables -------------------------------------------------------------------------------------
def parse_sections(text:str) -> list:
    "[(h2, h3, [line, ...])]: the lines under each heading, fenced code left out (a `#` comment there is not a heading)"
    out, h2, h3, lines, fence = [], '', '', [], False
    for line in text.splitlines():
        if line.startswith('```'): fence = not fence; continue
        if fence: continue
        m = re.match(r'(#{2,3}) (.*)', line)
        if m:
            out.append((h2, h3, lines))
            if m.group(1) == '##': h2, h3 = m.group(2).strip(), ''
            else: h3 = m.group(2).strip()
            lines = []
        else: lines.append(line)
    out.append((h2, h3, lines))
    return out


def _cells(line:str) -> list: return [c.strip().replace('**', '') for c in line.strip().strip('|').split('|')]


def parse_tables(lines:list) -> list:
    "Every markdown table in `lines`, each a list of {header: cell} rows"
    tables, i = [], 0
    while i < len(lines):
        if lines[i].lstrip().startswith('|') and i + 1 < len(lines) and re.match(r'\s*\|[\s\-|:]+\|\s*$', lines[i + 1]):
            head, rows, i = _cells(lines[i]), [], i + 2
            while i < len(lines) and lines[i].lstrip().startswith('|'):
                rows.append(dict(zip(head, _cells(lines[i])))); i += 1
            tables.append(rows)
        else: i += 1
    return tables


@lru_cache(None)
def bench_text() -> str: return BENCH_MD.read_text()


def section(h2:str, h3:str='') -> str:
    "The text under the `##` heading starting with `h2` and, within it, the `###` heading starting with `h3`"
    hits = [ls for a, b, ls in parse_sections(bench_text()) if a.startswith(h2) and (b.startswith(h3) if h3 else b == '')]
    assert len(hits) == 1, f"bench/README.md: {len(hits)} sections match ({h2!r}, {h3!r})"
    return '\n'.join(hits[0])


def table(h2:str, h3:str='', i:int=0) -> list: return parse_tables(section(h2, h3).splitlines())[i]


def row(tbl:list, **match) -> dict:
    "The one row whose cells equal `match` (keys: column labels with spaces and punctuation as `_`)"
    key = lambda h: re.sub(r'\W+', '_', h).strip('_')
    hits = [r for r in tbl if all(r[next(h for h in r if key(h) == k)] == str(v) for k, v in match.items())]
    assert len(hits) == 1, f"{len(hits)} rows match {match}"
    return hits[0]


def num(cell:str, i:int=0) -> float:
    "The i-th number in a cell ('1.99 (15×)' → 1.99, i=1: 15; '≤ 0.400' → 0.4; '2,016' → 2016)"
    return float(re.findall(r'[-−+]?\d[\d,]*\.?\d*(?:e[-+]?\d+)?', cell)[i].replace(',', '').replace('−', '-'))


def prose(h2:str, h3:str, pattern:str) -> tuple:
    "The numbers a regex captures in the prose of one section of bench/README.md"
    m = re.search(pattern, norm(section(h2, h3)))
    assert m, f"bench/README.md ({h2!r}, {h3!r}) no longer says {pattern!r}"
    return tuple(float(g.replace(',', '')) for g in m.groups())


# ---- the sources ----------------------------------------------------------------------------------------------------
INF, CAL, TRO, STUDY = '`inference.py`', '`calibration.py`', '`train_overhead.py`', '`cifar_study.py`'


def inference_values() -> dict:
    t = table(INF, 'Results')
    def r(model, batch, frac, threads, patterns='per-image'):
        return row(t, model=model, batch=batch, patterns=patterns, threads=threads, MAC_fraction=frac)
    v = {}
    for m in ('r50', 'r18', 'r56'):
        for f in ('0.300', '0.500', '0.700'):
            for th in (1, 2):
                x = r(m, 1, f, th)
                v[f'{m}_{f[2]}_{th}'] = num(x['converted / dense'])
                v[f'{m}_{f[2]}_goal'] = num(x['goal'])
                if th == 1: v[f'{m}_{f[2]}_miss'] = num(x['converted / dense']) - num(x['goal'])
    v['speedup_r50_30'] = 1 / v['r50_3_1']
    v['met'] = sum(x['met'] == 'yes' for x in t)
    v['rows'] = len(t)
    v['max_err'] = max(num(x['max rel. error']) for x in t)
    for p, b in (('tr1', 1), ('tr256', 256)):
        for th in (1, 2):
            x = r('r56', b, {1: '0.140', 256: '0.213'}[b], th, 'trained r56_ft_bas')
            v[f'{p}_{th}'], v[f'{p}_goal'], v[f'{p}_frac'] = num(x['converted / dense']), num(x['goal']), num(x['MAC fraction'])
    s = table(INF, 'Results', 2)   # trained gates, by strategy (before the GROUP_MIN_MACS fix)
    for run in ('r56_ft_bas', 'r32_bas'):
        x = row(s, run=run, batch=256, threads=1)
        v[f'{run}_auto'], v[f'{run}_best'] = num(x['auto / dense']), num(x['best / dense'])
    eng = row(table(INF, 'Engine choices'), question='memory format, ImageNet sizes')['measurement']
    nchw, nhwc = (float(x) for x in re.search(r'NCHW ([\d.]+) ms, channels-last ([\d.]+) ms', eng).groups())
    v['maxpool'] = nchw / nhwc
    from bsgate import inference
    v['group_min'], v['call_macs'], v['call_share'] = inference.GROUP_MIN_MACS / 1e6, inference.CALL_MACS / 1e6, inference.CALL_SHARE
    return v


def table_rows(v:dict) -> str:
    "The inference page's 'Measured' table from bench/README.md's: one thread (two), goal; bold where met"
    t = table(INF, 'Results')
    names = [('ResNet-50, 224 px', 'r50', 1), ('ResNet-18, 224 px', 'r18', 1), ('ResNet-50, batch 32', 'r50', 32),
             ('CIFAR ResNet-56', 'r56', 1), ('CIFAR ResNet-56, batch 256', 'r56', 256)]
    lines = []
    for name, m, b in names:
        cells = []
        for f in ('0.300', '0.500', '0.700'):
            x1, x2 = (row(t, model=m, batch=b, patterns='per-image', threads=th, MAC_fraction=f) for th in (1, 2))
            c = f"{num(x1['converted / dense']):.3f} ({num(x2['converted / dense']):.3f})"
            if x1['met'] == 'yes' or x2['met'] == 'yes': c = f'**{c}**'
            cells.append(f"{c} → {num(x1['goal']):.2f}")
        lines.append(f"| {name} | " + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def overhead_values() -> dict:
    fp = table(TRO, 'The fast path')
    pick = lambda p: next(x for x in fp if x['run'].startswith(p))
    v = {}
    for run in 'ABC':
        x = next(x for x in fp if x['run'].startswith(run) and x['what'].startswith('fastai'))
        v[f'{run}_new'], v[f'{run}_old'] = (num(re.search(r'paired ([\d.]+)', x[c]).group(1))
                                            for c in ('gated, fast path', 'gated, before issue 14'))
    for run in 'DE':
        x = pick(run)
        v[f'{run}_eager'] = num(x['gated, fast path'])
        v[f'{run}_comp'], *v[f'{run}_ct'] = (float(g) for g in re.search(
            r'both compiled: ([\d.]+) \(compile (\d+) s[^,]*, (\d+) s', x['other']).groups())
    old = table(TRO, 'Results')
    v['plain_old'] = num(row(old, step_batch_128='gated, CE + BS + L0')['vs dense'])
    v['fastai_old'] = num(row(old, step_batch_128="fastai: `cifar_learner(.., 'cifar10_r56')`, per batch")['vs dense'])
    v['open_old'] = num(row(old, step_batch_128='gated, gates forced open, CE + BS + L0')['vs dense'])
    v['sumpool_old'] = num(row(old, step_batch_128='gated, CE + BS + L0, proposed sum-pool gate')['vs dense'])
    return v


CLASSIFY = ('CIFAR ResNet-20', 'CIFAR ResNet-56', 'CIFAR ResNet-110', 'ImageNet ResNet-50 (`gate_at=(1, 2)`)')


def calibration_values() -> dict:
    g = table(CAL, 'Results', 0)
    rows = {x['network']: x for x in g}
    cls = [rows[n] for n in CLASSIFY]
    v = {}
    weaker = [num(x['task']) / num(x['γ=0.75 BaS, mean']) for x in cls]      # the raw values, not the rounded ratios
    v['weak_lo'], v['weak_hi'] = int(round(min(weaker), -1)), int(round(max(weaker), -2))
    stronger = sorted(num(x['γ=0.75 BaS, sum'], 1) for x in cls)
    v['strong_lo'], v['strong_hi'] = int(stronger[0]), int(stronger[-1])
    v['strong_med'] = (stronger[1] + stronger[2]) / 2
    v['seg'] = num(rows['CamVid PSPNet-R18']['γ=0.75 BaS, sum'], 1)
    v['gater'] = num(rows['GaterNet-R20, the hybrid preset (gater)']['γ=0.75 BaS, sum'], 1)
    v['gamma_seg'] = 0.75 * v['strong_med'] / v['seg']
    v['mac_hi'] = num(rows['CIFAR ResNet-20']["λ=30 budget `'mac'` (old)"], 1)
    v['mac_lo'] = num(rows[CLASSIFY[3]]["λ=30 budget `'mac'` (old)"], 1)
    v['gates'] = {n: int(num(rows[n]['gates'])) for n in CLASSIFY}
    v['r20'], v['r56'], v['r110'], v['r50'] = (int(num(rows[n]['γ=0.75 BaS, sum'], 1)) for n in CLASSIFY)
    v['cifar_lo'], v['cifar_hi'] = min(v['r20'], v['r56'], v['r110']), max(v['r20'], v['r56'], v['r110'])
    w = table(CAL, 'Results', 1)
    s, mn, z = (row(w, arm=a) for a in ('γ = 0.75, sum', 'γ = 0.75, mean', 'γ = 0'))
    v['cvm_sum'], v['cvm_mean'], v['cvm_none'] = (num(x['CvM pooled']) for x in (s, mn, z))
    v['open_sum'], v['open_mean'] = num(s['open']), num(mn['open'])
    b = table(CAL, 'Results', 2)
    b2, b3, b5 = (next(x for x in b if x['bias (σ)'].startswith(k)) for k in ('2 ', '3 ', '5 '))
    v['frac2'], v['frac3'], v['frac5'] = (num(x['MAC fraction (target 0.559)']) for x in (b2, b3, b5))
    v['lead3'] = num(b3['accuracy']) - num(b2['accuracy'])
    return v


def camvid_values() -> dict:
    frac, off, cond, miou, miou0, dense = prose(STUDY, 'Study v1',
        r'The run ends at ([\d.]+) of the dense MACs.*?, (\d+)% of the gates always off, (\d+)% conditional; '
        r'mIoU ([\d.]+) \(([\d.]+) before the recalibration\), against ([\d.]+) for `camvid`')
    secs, = prose(STUDY, 'Study v1', r'one thread, ([\d,]+) s, 2-core')
    return dict(frac=frac, off=off, cond=cond, miou=miou, dense=dense, minutes=secs / 60)


@lru_cache(None)
def mac_values() -> dict:
    from bsgate.models.resnet import cifar_resnet, resnet18, resnet50
    from bsgate.models.gaternet import GaterNet
    from bsgate.macs import dense_macs, savable_by_module
    c = lambda m: dense_macs(m, (3, 32, 32))
    v = {f'r{d}': c(cifar_resnet(d)) / 1e6 for d in (20, 32, 56)}
    v['r20_exact'], v['r20_conv'] = c(cifar_resnet(20)), c(cifar_resnet(20, num_classes=0))
    v['r20b'] = c(cifar_resnet(20, shortcut='B')) / 1e6
    v['gates_r20'] = 100 * (c(cifar_resnet(20, gate_layer='channel')) / v['r20_exact'] - 1)
    for sc in 'AB':
        v[f'gater_{sc}_exact'] = c(GaterNet(20, shortcut=sc, gate_at=(2,)).gater)
        v[f'gater_{sc}'] = v[f'gater_{sc}_exact'] / 1e6
        v[f'gaternet_{sc}'] = v[f'gater_{sc}'] + c(cifar_resnet(20, shortcut=sc)) / 1e6
    v['target_r56'] = v['r20'] / v['r56']
    v['t95_r32'], v['t95_r56'] = 0.95 * v['r20'] / v['r32'], 0.95 * v['r20'] / v['r56']
    ngates = lambda m: sum(g.nf for g in m.gate_modules())
    v['gates'] = {d: ngates(cifar_resnet(d, gate_layer='channel')) for d in (20, 56, 110)}
    r50g = resnet50(gate_layer='channel', gate_at=(1, 2))
    v['gates'][50], v['layers_r50'] = ngates(r50g), len(r50g.gate_modules())
    v['layers_r56'] = len(cifar_resnet(56, gate_layer='channel').gate_modules())
    v['gaternet_gates'] = {d: sum(GaterNet(d, gate_at=(2,)).gate_sizes) for d in (20, 56)}
    for at in ((1,), (1, 2)):
        sv = savable_by_module(resnet50(gate_layer='channel', gate_at=at), (3, 224, 224))
        v[f'savable{len(at)}'] = 100 * sum(s for s, _ in sv.values()) / sum(s + f for s, f in sv.values())
    v['r18_of_r50'] = 100 * dense_macs(resnet18(), (3, 224, 224)) / dense_macs(resnet50(), (3, 224, 224))
    return v


def scratch_values() -> dict:
    "The from-scratch gated runs of the CIFAR study (published): what their inference gates cost, of ResNet-20's MACs"
    ck = ROOT / 'checkpoints' / 'cifar10'
    fr = [json.loads((ck / r / 'metrics.json').read_text())['macs'] / mac_values()['r20_exact']
          for r in ('r32_bas5', 'r32_bas8', 'r32_bas', 'r32_bas25')]
    return dict(lo=min(fr), hi=max(fr))


@lru_cache(None)
def values() -> dict:
    return dict(inf=inference_values(), tro=overhead_values(), cal=calibration_values(), cv=camvid_values(),
                mac=mac_values(), scr=scratch_values())


# ---- the claims -----------------------------------------------------------------------------------------------------
INDEX = ('README.md', 'nbs/index.ipynb')
BENCH = ('bench/README.md',)
INFER = ('nbs/12_inference.ipynb',)
CIFAR, IMNET, CITY = ('nbs/tutorials/cifar10.ipynb',), ('nbs/tutorials/imagenet.ipynb',), ('nbs/tutorials/cityscapes.ipynb',)
GATER = ('nbs/06c_models.gaternet.ipynb',)
WORDS = {1: 'One', 2: 'Two', 3: 'Three', 4: 'Four', 5: 'Five', 6: 'Six'}

CLAIMS = [   # (template, pages); the template is formatted with values() and so sees inf, tro, cal, cv, mac, scr
    # inference.py (bench/README.md, `inference.py` > Results)
    ("a ResNet-50 with 30% of its MACs left runs in {inf[r50_3_1]:.2f} of the dense time, while the small CIFAR ResNets "
     "gain little: {inf[r56_3_1]:.2f} of dense at 30%", INDEX),
    ("with 30%, 50% and 70% of its MACs takes {inf[r50_3_1]:.2f}, {inf[r50_5_1]:.2f} and {inf[r50_7_1]:.2f} of the dense "
     "network's time ({inf[speedup_r50_30]:.1f}× faster at 30%); the goal, the MAC fraction + 0.10, is missed by "
     "{inf[r50_3_miss]:.2f}, {inf[r50_5_miss]:.2f} and {inf[r50_7_miss]:.2f}.", INFER),
    ("CIFAR ResNet-56 reaches only {inf[r56_3_1]:.2f}, {inf[r56_5_1]:.2f} and {inf[r56_7_1]:.2f}", INFER),
    ("this reaches {inf[r50_3_1]:.2f} / {inf[r50_5_1]:.2f} / {inf[r50_7_1]:.2f} of the dense time at MAC fractions "
     "0.3 / 0.5 / 0.7", IMNET),
    ("every timed case exact to ≤ {inf[max_err_s]} relative", INFER),
    ("Exact everywhere (≤ {inf[max_err_s]} relative)", BENCH),
    ("Trained gates (`checkpoints/cifar10/r56_ft_bas` on 16 / 256 validation images, MAC fraction {inf[tr1_frac]:.2f} / "
     "{inf[tr256_frac]:.2f}): {inf[tr1_1]:.3f} ({inf[tr1_2]:.3f}) at batch 1, goal {inf[tr1_goal]:.2f}; {inf[tr256_1]:.3f} "
     "({inf[tr256_2]:.3f}) at batch 256, goal {inf[tr256_goal]:.2f}.", INFER),
    ("was slower than dense ({inf[r56_ft_bas_auto]:.2f}) until blocks under `GROUP_MIN_MACS` took the union", INFER),
    ("{inf[met_word]} of the {inf[rows]} rows meet their goal", INFER),
    ("Goals: {inf[met]} of {inf[rows]} rows met", BENCH),
    ("largest relative error {inf[max_err]:.1e} over all {inf[rows]} timed cases", BENCH),
    ("slower than the dense network ({inf[r56_ft_bas_auto]:.2f} and {inf[r32_bas_auto]:.2f} with one thread, table above), "
     "while `'union'` is {inf[r56_ft_bas_best]:.2f} and {inf[r32_bas_best]:.2f}", BENCH),
    ("ResNet's max-pool is {inf[maxpool]:.0f}× faster in NHWC", INFER),
    ("blocks under `GROUP_MIN_MACS` = {inf[group_min]:.0f} M MACs per image", BENCH + INFER),
    ("`CALL_SHARE` $s$ = {inf[call_share]:.2f} of the block's dense MACs", INFER),
    ("with $c$ = {inf[call_macs]:.0f} M + {inf[call_share]:.2f} × the block's dense MACs per call", BENCH),
    # train_overhead.py
    ("it then trains the gated network at {tro[D_comp]:.2f}× the compiled dense step, against {tro[D_eager]:.2f}× eager",
     ('nbs/10c_speed.ipynb',)),
    ("both models compiled: {tro[E_comp]:.3f} (ResNet-20) and {tro[D_comp]:.3f} (ResNet-56) in the plain loop", BENCH),
    ("by the paired ratio (A {tro[A_old]:.3f} → {tro[A_new]:.3f}, B {tro[B_old]:.3f} → {tro[B_new]:.3f}, "
     "C {tro[C_old]:.3f} → {tro[C_new]:.3f})", BENCH),
    ("the fast path's gated batch is {tro[new_lo]:.2f}–{tro[new_hi]:.2f}× the dense one through fastai", BENCH),
    ("Compiling costs {tro[E_ct][0]:.0f}–{tro[E_ct][1]:.0f} s (ResNet-20) and {tro[D_ct][0]:.0f} s (dense) / "
     "{tro[D_ct][1]:.0f} s (gated) for ResNet-56", BENCH),
    ("the gated step costs {tro[plain_old]:.2f}× the dense one in a plain loop and about {tro[fastai_old]:.2f}× through "
     "fastai", BENCH),
    ("{tro[plain_old]:.3f} → {tro[sumpool_old]:.3f} in the run above", BENCH),
    ("and the sampling: {tro[open_old]:.3f}.", BENCH),
    # calibration.py
    ("batch-shaping's push on the gates is {cal[weak_lo]}–{cal[weak_hi]}× weaker than the task's", BENCH),
    ("batch-shaping's gradient on the gates is {cal[weak_lo]}–{cal[weak_hi]}× smaller than the task's", CIFAR),
    ("Under the sum it is {cal[strong_lo]}–{cal[strong_hi]}× stronger than the task's for every classification ResNet "
     "from {cal[g_min]:,} to {cal[g_max]:,} gates", BENCH),
    ("under the sum it is {cal[strong_lo]}–{cal[strong_hi]}× larger for every classification ResNet from {cal[g_min]:,} "
     "to {cal[g_max]:,} gates", CIFAR),
    ("so the same γ is ~{cal[seg_gater]:.0f}× the task there", BENCH),
    ("γ = 0.75 × {cal[strong_med]:.0f}/{cal[seg]:.0f} ≈ {cal[gamma_seg]:.2f}", BENCH),
    ("fell from {cal[mac_hi]:.0f}× to {cal[mac_lo]:.2f}× the task", BENCH),
    ("{cal[g20]}× weaker at ResNet-20, {cal[g110]}× at ResNet-110", BENCH + ('nbs/02_shaping.ipynb',)),
    ("{cal[cifar_lo]}–{cal[cifar_hi]}× the task loss's on the CIFAR ResNets ({cal[r20]}× on ResNet-20, {cal[r56]}× on -56, "
     "{cal[r110]}× on -110; {cal[r50]}× on the ImageNet ResNet-50)", ('nbs/10_learner.ipynb',)),
    ("(CvM {cal[cvm_mean]:.3f} against {cal[cvm_none]:.3f}, {cal[open_mean]:.0f}% open)", BENCH),
    ("(CvM {cal[cvm_sum]:.4f} against {cal[cvm_none]:.3f} without batch-shaping); the network then computes "
     "{cal[open_sum]:.0f}% of its channels", BENCH),
    ("a Cramér–von Mises distance of {cal[cvm_sum]:.4f} from the Beta(0.6, 0.4) prior; averaged, the gates ended where "
     "they end without batch-shaping ({cal[cvm_mean]:.4f} against {cal[cvm_none]:.4f}, {cal[open_mean]:.0f}% open)", CIFAR),
    ("({cal[frac3]:.3f} against {cal[frac2]:.3f} for bias 2), so part of its {cal[lead3]:.0f}-point lead", BENCH),
    ("far below the budget ({cal[frac5]:.3f} of its MACs", BENCH),
    # MAC and gate counts, computed from bsgate
    ("the paper's CIFAR MAC counts, e.g. ResNet-20 = {mac[r20]:.2f} M, are option-A counts", ('nbs/06_models.resnet.ipynb',)),
    ("ResNet-20 is {mac[r20]:.2f} MMACs and ResNet-56 {mac[r56]:.2f} MMACs, so {mac[target_r56]:.2f}", CIFAR),
    ("GaterNet adds an entire ResNet-20 gater per image: {mac[gater_A]:.2f} MMAC (option-A shortcuts; {mac[gater_B]:.2f} "
     "with GaterNet's option B)", GATER),
    ("A GaterNet-ResNet-20 costs ≈ {mac[gaternet_A]:.1f} MMAC with all gates open", GATER),
    ("gater costs {mac[gater_A_exact]:,} MACs per 32×32 image — He et al.'s ResNet-20 convolutions ({mac[r20_conv]:,})",
     GATER),
    ("as much as the dense backbone ({mac[r20_exact]:,} with its classifier)", GATER),
    ("gater's {mac[gater_A]:.2f} MMAC sit under every curve", GATER),
    ("({mac[gaternet_B]:.1f} M against {mac[r20]:.1f} M; {mac[gn_lo]:.0f}–{mac[gn_hi]:.0f} M if the closed conv2 outputs "
     "were skipped)", GATER),
    ("at {mac[gaternet_B]:.1f} M MACs per image as its code computes ({mac[gn_lo]:.0f}–{mac[gn_hi]:.0f} M if the closed "
     "conv2 outputs were skipped) against {mac[r20]:.1f} M", CIFAR),
    ("({mac[gaternet_B]:.2f} M: backbone {mac[r20b]:.2f} M with option-B shortcuts + gater {mac[gater_B]:.2f} M", BENCH),
    ("the gates of a CIFAR ResNet-20 add {mac[gates_r20]:.3f}%", ('nbs/08_callbacks.ipynb',)),
    ("at most {mac[savable1]:.0f}% of a ResNet-50's MACs can be saved; the `imagenet_r50` preset gates conv1 and conv2 "
     "(`gate_at=(1, 2)`), {mac[savable2]:.0f}%, which is needed to reach ResNet-18's {mac[r18_of_r50]:.0f}% of ResNet-50",
     IMNET),
    ("conv1 and conv2 scale with it, {mac[savable1]:.0f}% of ResNet-50's MACs", ('nbs/05_blocks.ipynb',)),
    ("ResNet-20 ({mac[gates][20]} gates) and ResNet-50 ({mac[gates][50]:,})", ('nbs/02_shaping.ipynb',)),
    ("{mac[gaternet_gates][20]} gates (ResNet-20), {mac[gaternet_gates][56]} (ResNet-56)", GATER),
    ("{mac[layers_r50]} gate layers, {mac[gates][50]} gates", BENCH),
    ("the target at 0.95 × ResNet-20's MACs over the network's own dense MACs ({mac[t95_r32]:.3f} for ResNet-32, "
     "{mac[t95_r56]:.3f} for ResNet-56)", BENCH),
    ("{mac[layers_r56]} gate layers, {mac[gates][56]} gates", BENCH),
    # the from-scratch runs' landing (published runs; bench/README.md, 08_callbacks and 11_train quote it)
    ("spend less than they are allowed ({scr[lo]:.2f}–{scr[hi]:.2f} of ResNet-20's MACs against the 0.95 target)", BENCH),
    ("every gated run trained from scratch to 0.95 of ResNet-20's MACs ended at {scr[lo]:.2f}–{scr[hi]:.2f} with the "
     "inference gates", ('nbs/08_callbacks.ipynb',)),
    ("the CIFAR study's from-scratch runs to 0.95 of ResNet-20's MACs landed at {scr[lo]:.2f}–{scr[hi]:.2f} that way",
     ('nbs/11_train.ipynb',)),
]


def fields() -> dict:
    "values(), with the few fields derived for wording"
    v = values()
    inf, tro, cal, mac = dict(v['inf']), dict(v['tro']), dict(v['cal']), dict(v['mac'])
    inf['met_word'] = WORDS[inf['met']]
    new = [tro[f'{r}_new'] for r in 'ABC']
    tro['new_lo'], tro['new_hi'] = min(new), max(new)
    g = cal['gates']
    cal['g_min'], cal['g_max'] = min(g.values()), max(g.values())
    cal['g20'], cal['g110'] = g['CIFAR ResNet-20'], g['CIFAR ResNet-110']
    cal['seg_gater'] = round((cal['seg'] + cal['gater']) / 2, -1)
    gn = table(STUDY, 'Results', 1)   # the GaterNet table: MACs as the code runs / skipping closed conv2 outputs
    skip = [num(x['MACs/image, code / skipping closed'], 1) for x in gn]
    mac['gn_lo'], mac['gn_hi'] = min(skip), max(skip)
    inf['max_err_s'] = f"{inf['max_err']:.1e}".replace('e-0', 'e-')   # 9.4e-7, as the pages write it
    return _num(dict(v, inf=inf, tro=tro, cal=cal, mac=mac))


class Num(float):
    "A float that rounds half up when formatted with a fixed precision, as a person rounds a printed 1.075 (to 1.08)"
    def __format__(self, spec:str) -> str:
        m = re.fullmatch(r'(,?)\.(\d+)f', spec)
        if not m: return super().__format__(spec)
        d = Decimal(repr(float(self))).quantize(Decimal(1).scaleb(-int(m.group(2))), rounding=ROUND_HALF_UP)
        return f'{d:{m.group(1)}f}'


def _num(v):
    if isinstance(v, dict): return {k: _num(x) for k, x in v.items()}
    if isinstance(v, list): return [_num(x) for x in v]
    return Num(v) if isinstance(v, float) else v




@pytest.mark.parametrize('template,pages', CLAIMS, ids=[c[0][:40] for c in CLAIMS])
def test_number_follows_its_source(template, pages):
    want = norm(template.format(**fields()))
    for page in pages:
        assert want in page_text(page), f"{page} does not state, from its source: {want!r}"


def test_inference_table_follows_bench():
    "The inference page's table of measured ratios is bench/README.md's main table, rounded the same way"
    want = norm(table_rows(values()['inf']))
    assert want in page_text('nbs/12_inference.ipynb'), f"nbs/12_inference.ipynb's 'Measured' table is stale: {want!r}"


def test_sources_agree_with_the_library():
    "The MACs and gate counts bench/README.md's tables print are what bsgate counts today; GAMMA_SEG is the rule's value"
    from bsgate.learner import GAMMA_SEG
    v = fields()
    mac, cal = v['mac'], v['cal']
    st = table(STUDY, 'Results', 0)
    for run, key in (('r20_dense', 'r20'), ('r32_dense', 'r32'), ('r56_dense10', 'r56'), ('r20b_dense8', 'r20b')):
        assert f"{mac[key]:.2f} M" == row(st, run=run)['MACs/image'], run
    for name, d in zip(CLASSIFY, (20, 56, 110, 50)): assert cal['gates'][name] == mac['gates'][d], name
    assert round(cal['gamma_seg'], 2) == GAMMA_SEG
    inf = v['inf']
    for m, extra in (('r50', .10), ('r18', .10), ('r56', .20)):   # the goals are the fraction + the margin
        for f in '357': assert abs(inf[f'{m}_{f}_goal'] - (int(f) / 10 + extra)) < 1e-9, (m, f)


def test_parser_reads_tables():
    "Headings, fences and tables as the sources need them"
    text = "## A\n```sh\n# not a heading\n```\n### B\n| x | **y** |\n|---|---|\n| 1 | 2.5 (3×) |\n"
    secs = parse_sections(text)
    assert [(a, b) for a, b, _ in secs] == [('', ''), ('A', ''), ('A', 'B')] and secs[1][2] == []
    h2, h3, lines = secs[2]
    t = parse_tables(lines)[0]
    assert t == [{'x': '1', 'y': '2.5 (3×)'}] and num(t[0]['y']) == 2.5 and num(t[0]['y'], 1) == 3


def test_the_numbers_can_fail():
    "A changed source value is caught: the check is not vacuous"
    v = fields()
    bad = dict(v, inf={**v['inf'], 'r50_3_1': v['inf']['r50_3_1'] + 0.05})
    assert norm(CLAIMS[0][0].format(**bad)) not in page_text('nbs/index.ipynb')
    bad = dict(v, cal={**v['cal'], 'strong_hi': v['cal']['strong_hi'] + 1})
    t = next(c for c, p in CLAIMS if p == CIFAR and 'strong_hi' in c)
    assert norm(t.format(**bad)) not in page_text(CIFAR[0])
    bad = dict(v, mac={**v['mac'], 'r20': v['mac']['r20'] + 0.01})
    t = next(c for c, p in CLAIMS if 'MMACs and ResNet-56' in c)
    assert norm(t.format(**bad)) not in page_text(CIFAR[0])
    text = BENCH_MD.read_text().replace('| r50 | 1 | per-image | 1 | 0.300 | 109.43 | 98.42 | 123.95 | 55.92 | 0.511 |',
                                         '| r50 | 1 | per-image | 1 | 0.300 | 109.43 | 98.42 | 123.95 | 55.92 | 0.531 |')
    assert text != BENCH_MD.read_text()   # a re-measured table moves the source value, and the pages must follow
    t = parse_tables(next(ls for a, b, ls in parse_sections(text) if a.startswith(INF) and b.startswith('Results')))[0]
    assert num(row(t, model='r50', batch=1, patterns='per-image', threads=1, MAC_fraction='0.300')['converted / dense']) == 0.531
