"""Execute notebooks the way the tests do and save their outputs in place, so the docs site shows the figures.

nbdev renders the outputs stored in each notebook; it does not execute notebooks (only `show_doc` cells and imports).
This runs each given notebook with nbdev's test rules (cells tagged with a `tst_flags` flag are skipped unless named
with `--flags`), copies every executed cell's outputs into the notebook (a skipped cell keeps the outputs it has, so
a figure from a long run made once stays), and cleans it with nbdev's cleaner.

    .venv/bin/python tests/save_outputs.py nbs/13_analysis.ipynb nbs/tutorials/cifar10.ipynb
    .venv/bin/python tests/save_outputs.py nbs/tutorials/cifar10.ipynb --flags data   # also run `data` cells
"""
import argparse, json, os, sys, time
from pathlib import Path
from fastcore.basics import str2bool
from execnb.shell import CaptureShell
from nbdev.config import get_config
from nbdev.process import NBProcessor
from nbdev.frontmatter import FrontmatterProc
from nbdev.clean import clean_nb
from fastcore.xtras import working_directory


# Jupyter's fastprogress: HTML bars and results table, updated in place. The shell keeps every update as an output;
# `final_progress` keeps what Jupyter shows at the end of the cell.
NOTEBOOK_BARS = """import fastprogress.fastprogress as _fp, fastai.callback.progress as _fprog
_fprog.master_bar, _fprog.progress_bar = _fp.NBMasterBar, _fp.NBProgressBar"""

def _is_progress(o:dict) -> bool:
    html = ''.join(o.get('data', {}).get('text/html', '')) if o.get('output_type') == 'display_data' else ''
    return 'fastprogress' in html or '<progress' in html

def final_progress(outputs:list) -> list:
    "Of each run of progress displays, only the last, and only if it is a results table (a finished bar is dropped)"
    res = []
    for i, o in enumerate(outputs):
        if not _is_progress(o): res.append(o); continue
        last = i + 1 == len(outputs) or not _is_progress(outputs[i + 1])
        if last and '<table' in ''.join(o['data']['text/html']): res.append(o)
    return res


def run(fn:Path, force:set) -> float:
    cfg = get_config()
    flags = set(cfg.tst_flags.split()) - force
    nb = NBProcessor(fn, procs=FrontmatterProc, process=True).nb
    def _no_eval(cell):
        if cell.cell_type != 'code': return True
        if 'nbdev_export' + '(' in cell.source: return True
        direc = getattr(cell, 'directives_', {}) or {}
        return bool(flags & direc.keys())
    sys.path.insert(0, str(cfg.config_path))
    os.environ['IN_TEST'] = '1'
    t0 = time.time()
    k = CaptureShell(fn, mpl_format='png')  # 1x PNGs: the notebooks stay small
    k.run(NOTEBOOK_BARS)                     # fastai's progress as in Jupyter (HTML), not console bars full of \r
    for c in nb.cells:   # execnb stores a cell's outputs only when it has some: a cell that now prints nothing must not keep old ones
        if c.cell_type == 'code' and not _no_eval(c): c['outputs'] = []
    with working_directory(fn.parent):
        k.run_all(nb, exc_stop=True, preproc=_no_eval)
    ran = {c['id']: c for c in nb.cells if c.cell_type == 'code' and not _no_eval(c)}
    raw = json.loads(fn.read_text())
    for c in raw['cells']:
        if c['cell_type'] == 'code' and c.get('id') in ran:
            c['outputs'] = final_progress([dict(o) for o in ran[c['id']].get('outputs', [])  # warnings (stderr) are not for the docs
                                           if not (o.get('output_type') == 'stream' and o.get('name') == 'stderr')])
    clean_nb(raw)
    fn.write_text(json.dumps(raw, sort_keys=True, indent=1, ensure_ascii=False) + '\n')
    return time.time() - t0


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('notebooks', nargs='+', type=Path)
    ap.add_argument('--flags', nargs='*', default=[], help='tst_flags to run anyway (e.g. data slow)')
    a = ap.parse_args()
    for f in a.notebooks:
        print(f"{f}: {run(f.resolve(), set(a.flags)):.0f} s", flush=True)
