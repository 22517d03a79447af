"""Prepare the GPU check's one device call (bench/README.md, "`gpu_check.py`"), and measure what it would carry.

The device tool carries the working tree (tracked files that exist, untracked files git does not ignore) and the paths
named in `carry` (.whl/, .gpudata/), at most 64 MiB in all. This script

  - makes .whl/ (the eleven wheels of the fastai stack the GPU machine lacks) and .gpudata/ (CIFAR-10's train.tar.gz and
    the commit), reusing either when it is already complete;
  - measures what would travel, broken down (tracked, untracked, each carried path), in full form and in slim form, and
    refuses (exit 2, one line: the size and what to leave out) when what would travel now is over the limit;
  - `--slim`: deletes from the working tree (not from git) the tracked files the check never reads: every
    checkpoints/*/* run folder except those `gpu_check.READS` lists, and bench/partial/; refuses when checkpoints/ or
    bench/partial/ hold uncommitted changes (so nothing is lost), and prints the command that restores them;
  - `--restore`: brings the slimmed files back (`git checkout` of the deleted tracked files there).

    .venv/bin/python bench/gpu_prepare.py --slim        # prepare + slim: then run(command="bash bench/gpu_check.sh", carry=[".whl", ".gpudata"], timeout_s=600)
    .venv/bin/python bench/gpu_prepare.py --restore     # after the call: git checkout -- checkpoints bench/partial
    .venv/bin/python bench/gpu_prepare.py --check-only  # only measure (nothing made or deleted); exit 0 ready, 2 over the limit, 3 not prepared

Exit status: 0 ready; 1 slim refused (uncommitted changes) or a step failed; 2 over the limit; 3 .whl/ or .gpudata/ incomplete.
`measure()` is what `gpu_check.py --dry-run` calls (its `travel` part), without making or deleting anything.
"""
from __future__ import annotations
import argparse, os, shutil, subprocess, sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LIMIT_MIB = 64
CARRY = ('.whl', '.gpudata')
SLIM_ROOTS = ('checkpoints', 'bench/partial')   # what --slim may delete from (and the restore command restores)
RESTORE = 'git checkout -- checkpoints bench/partial'
# Sizes of the carried folders measured when they were made (bench/README.md), for a measurement without them (CI's dry run)
ESTIMATE = {'.whl': int(2.5 * 2**20), '.gpudata': int(15.5 * 2**20)}
CIFAR = Path(os.environ.get('BSGATE_DATA', ROOT.parent / 'shared' / 'data')) / 'cifar10' / 'train.tar.gz'

# The wheels gpu_check.sh installs on the GPU machine (Python 3.12, no network): (name, version, how it is obtained)
#   'download': a wheel from the registry for CPython 3.12 on manylinux; 'build': a pure-Python wheel built here from the sdist
WHEELS = [('fastai', '2.8.7', 'download'), ('fastcore', '1.14.5', 'download'), ('fasttransform', '0.0.2', 'download'),
          ('plum-dispatch', '2.10.1', 'download'), ('beartype', '0.23.1', 'download'), ('fastprogress', '1.0.3', 'download'),
          ('fastdownload', '0.0.8', 'download'), ('yacs', '0.1.8', 'download'), ('termcolor', '3.3.0', 'download'),
          ('fvcore', '0.1.5.post20221221', 'build'), ('iopath', '0.1.10', 'build')]
PLATFORMS = ('manylinux_2_28_x86_64', 'manylinux_2_17_x86_64', 'manylinux2014_x86_64')

def mib(b:float) -> float: return b / 2**20

def reads() -> tuple:
    "The tracked paths the check reads (defined once, in gpu_check.py)"
    sys.path.insert(0, str(BENCH))
    from gpu_check import READS
    return tuple(READS)

# ---------------------------------------------------------------------------------------------------- git
def git(root, *args, input:bytes|None=None) -> bytes:
    r = subprocess.run(['git', '-C', str(root), *args], capture_output=True, input=input)
    if r.returncode: raise RuntimeError(f"git {' '.join(args)}: {r.stderr.decode(errors='replace').strip()}")
    return r.stdout

def ls(root, *args) -> list[str]: return [f for f in git(root, 'ls-files', '-z', *args).decode().split('\0') if f]

def under(path:str, prefixes) -> bool: return any(path == p or path.startswith(p.rstrip('/') + '/') for p in prefixes)

def slim_files(root, keep) -> list[str]:
    "The tracked files --slim deletes: those of every checkpoints/<set>/<run>/ folder not in `keep`, and of bench/partial/"
    out = []
    for f in ls(root, '--', *SLIM_ROOTS):
        parts = f.split('/')
        if f.startswith('bench/partial/') or (parts[0] == 'checkpoints' and len(parts) >= 4 and not under('/'.join(parts[:3]), keep)):
            out.append(f)
    return out

def file_size(p:Path) -> int|None:
    "Bytes of a file or link as it would travel; None if absent or a directory (a submodule travels without its files)"
    try: st = os.lstat(p)
    except FileNotFoundError: return None
    return None if os.path.isdir(p) and not os.path.islink(p) else st.st_size

def tree_size(p:Path) -> int:
    if not p.is_dir(): return file_size(p) or 0
    return sum(os.lstat(Path(d) / f).st_size for d, _, fs in os.walk(p) for f in fs)

# ---------------------------------------------------------------------------------------------------- measure
def measure(root=ROOT, carry=CARRY, keep=None, estimate:bool=False, limit_mib:float=LIMIT_MIB) -> dict:
    """What the device call would carry (bytes): tracked files that exist + untracked files git does not ignore + the
    carried paths (whole; files inside them are not counted twice). `full`: the tree with every tracked file present;
    `slim`: without the files --slim deletes; `now`: as the tree is (slimmed or not). With `estimate`, an absent carried
    path counts as `ESTIMATE` (the CIFAR archive's own size for .gpudata/ when it is here). Nothing is made or deleted."""
    root = Path(root); keep = reads() if keep is None else tuple(keep)
    carry = tuple(c.strip('/') for c in carry)
    tracked = [f for f in ls(root) if not under(f, carry)]
    untracked = [f for f in ls(root, '-o', '--exclude-standard') if not f.endswith('/') and not under(f, carry)]
    drop = set(slim_files(root, keep))
    sizes = {f: file_size(root / f) for f in tracked}
    present = {f: s for f, s in sizes.items() if s is not None}
    untr = {f: s for f in untracked if (s := file_size(root / f)) is not None}
    # tracked files deleted from the tree (a slimmed tree): their size from git, so that `full` is the tree restored
    gone = [f for f, s in sizes.items() if s is None and f in drop]
    gone_sizes = dict(zip(gone, blob_sizes(root, gone))) if gone else {}
    c = {}
    for p in carry:
        q = root / p
        if q.exists(): c[p] = dict(bytes=tree_size(q), present=True, estimated=False)
        else:
            b = (CIFAR.stat().st_size + 41 if p == '.gpudata' and CIFAR.is_file() else ESTIMATE.get(p, 0)) if estimate else 0
            c[p] = dict(bytes=b, present=False, estimated=bool(estimate and b))
    t_now, u = sum(present.values()), sum(untr.values())
    t_full = t_now + sum(gone_sizes.values())
    dropped = sum(present.get(f, 0) for f in drop) + sum(gone_sizes.values())
    cs = sum(v['bytes'] for v in c.values())
    return dict(root=str(root), keep=list(keep), tracked=t_now, tracked_files=len(present), tracked_full=t_full,
                untracked=u, untracked_files=len(untr), carry=c, now=t_now + u + cs, full=t_full + u + cs, slim=t_full - dropped + u + cs,
                dropped=dropped, dropped_files=len(drop), slimmed=len(gone), limit=int(limit_mib * 2**20),
                dropped_runs=sorted({'/'.join(f.split('/')[:3]) for f in drop if f.startswith('checkpoints/')}),
                largest_untracked=sorted(untr.items(), key=lambda kv: -kv[1])[:5])

def blob_sizes(root, files) -> list[int]:
    "Sizes of the index's blobs of `files` (tracked files absent from the tree)"
    out = git(root, 'ls-files', '-s', '-z', '--', *files).decode().split('\0')
    objs = {line.split('\t', 1)[1]: line.split()[1] for line in out if line}
    b = git(root, 'cat-file', '--batch-check=%(objectsize)', input=''.join(objs[f] + '\n' for f in files).encode()).decode().split()
    return [int(x) for x in b]

def report(m:dict, out=print):
    c = ', '.join(f"{k} {mib(v['bytes']):.1f} MiB" + ('' if v['present'] else ' (absent' + (', estimated)' if v['estimated'] else ')'))
                  for k, v in m['carry'].items())
    gone = f", {m['slimmed']} slimmed away" if m['slimmed'] else ''
    out(f"travel now: {mib(m['now']):.1f} MiB of {mib(m['limit']):g} MiB = tracked {mib(m['tracked']):.1f} MiB ({m['tracked_files']} files{gone})"
        f" + untracked {mib(m['untracked']):.1f} MiB ({m['untracked_files']} files){' + ' + c if c else ''}")
    out(f"  full form (every tracked file): {mib(m['full']):.1f} MiB; slim form (--slim: keeps {', '.join(m['keep'])}, leaves out "
        f"{len(m['dropped_runs'])} other run folders of checkpoints/ and bench/partial/, {mib(m['dropped']):.1f} MiB): {mib(m['slim']):.1f} MiB")

def refusal(m:dict) -> str:
    "The one line that says why the call would be refused, and what to leave out"
    what = [f"tracked {mib(m['tracked']):.1f}", f"untracked {mib(m['untracked']):.1f}"] + [f"{k} {mib(v['bytes']):.1f}" for k, v in m['carry'].items()]
    if m['slim'] <= m['limit'] and m['now'] > m['slim']:
        hint = (f"leave out what the check does not read: --slim ({len(m['dropped_runs'])} run folders of checkpoints/ and bench/partial/, "
                f"{mib(m['now'] - m['slim']):.1f} MiB; {mib(m['slim']):.1f} MiB would travel)")
    else:
        big = ', '.join(f"{f} ({mib(s):.1f} MiB)" for f, s in m['largest_untracked'][:3])
        hint = (f"leave out {mib(m['now'] - m['limit']):.1f} MiB more: " + (f"untracked files ({big}), " if big else '')
                + "or data the check does not read (add to gitignore, or commit a smaller checkpoint)")
    return f"gpu_prepare: refused: {mib(m['now']):.1f} MiB would travel ({', '.join(what)} MiB), over the {mib(m['limit']):g} MiB limit; {hint}"

# ---------------------------------------------------------------------------------------------------- slim / restore
def uncommitted(root, keep) -> list[str]:
    "Changes under checkpoints/ and bench/partial/ other than --slim's own deletions (`XY path` lines of git status)"
    drop = set(slim_files(root, keep))
    toks = git(root, 'status', '--porcelain=v1', '-z', '--untracked-files=all', '--', *SLIM_ROOTS).decode().split('\0')
    bad, i = [], 0
    while i < len(toks):
        t = toks[i]; i += 1
        if not t: continue
        xy, path = t[:2], t[3:]
        if xy[0] in 'RC': i += 1   # a rename or copy: the next token is its origin
        if not (xy == ' D' and path in drop): bad.append(f'{xy} {path}')
    return bad

def slim(root=ROOT, keep=None, out=print) -> int:
    "Delete from the working tree the tracked files the check does not read; refuse (return 1) if that could lose anything"
    root = Path(root); keep = reads() if keep is None else tuple(keep)
    bad = uncommitted(root, keep)
    if bad:
        out(f"gpu_prepare: refused to slim: {len(bad)} uncommitted change(s) under {' and '.join(SLIM_ROOTS)} "
            f"({'; '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}): commit or move them first (slimming and `{RESTORE}` could lose them)")
        return 1
    n = b = 0
    dirs = set()
    for f in slim_files(root, keep):
        p = root / f
        if (s := file_size(p)) is None: continue
        p.unlink(); n += 1; b += s; dirs.add(p.parent)
    for d in sorted(dirs, key=lambda d: -len(d.parts)):   # empty run folders go too (git does not track folders)
        while d != root and d.is_dir() and not any(d.iterdir()) and under(d.relative_to(root).as_posix(), SLIM_ROOTS):
            d.rmdir(); d = d.parent
    out(f"slim: deleted {n} tracked files ({mib(b):.1f} MiB) from the working tree (not from git): every checkpoints/*/* run folder "
        f"but {', '.join(keep)}, and bench/partial/")
    out(f"after the device call, restore them: {RESTORE}   (or: .venv/bin/python bench/gpu_prepare.py --restore)")
    return 0

def restore(root=ROOT, out=print) -> int:
    "`git checkout` the tracked files deleted under checkpoints/ and bench/partial/ (only those: other changes are left alone)"
    gone = ls(root, '-d', '--', *SLIM_ROOTS)
    if gone: git(root, 'checkout', '--pathspec-from-file=-', '--pathspec-file-nul', '--', input=b'\0'.join(f.encode() for f in gone))
    out(f"restore: {len(gone)} tracked files brought back under {' and '.join(SLIM_ROOTS)}" if gone else "restore: nothing was slimmed away")
    return 0

# ---------------------------------------------------------------------------------------------------- .whl / .gpudata
def norm(name:str) -> str: return name.lower().replace('-', '_').replace('.', '_')

def wheels_state(whl:Path) -> tuple[list, list]:
    "(missing, extra): the WHEELS absent from `whl` as wheels for CPython 3.12 (pure Python or cp312), and other files there"
    have = {}
    for f in (whl.glob('*.whl') if whl.is_dir() else []):
        parts = f.name[:-4].split('-')
        if len(parts) < 5: continue
        py = parts[-3]
        if not any(t in ('py3', 'py2', 'cp312') for t in py.split('.')): continue
        have[(norm(parts[0]), parts[1])] = f.name
    missing = [w for w in WHEELS if (norm(w[0]), w[1]) not in have]
    want = {(norm(n), v) for n, v, _ in WHEELS}
    extra = sorted(f.name for f in (whl.glob('*') if whl.is_dir() else []) if f.name not in {have[k] for k in want if k in have})
    return missing, extra

def make_whl(whl:Path, out=print) -> bool:
    missing, extra = wheels_state(whl)
    if extra: out(f"gpu_prepare: .whl/ holds other files too ({', '.join(extra)}): gpu_check.sh installs every *.whl there; remove them")
    if not missing: out(f".whl/: complete ({len(WHEELS)} wheels), reused"); return not extra
    whl.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, '-m', 'pip']
    dl = [f'{n}=={v}' for n, v, how in missing if how == 'download']
    bl = [f'{n}=={v}' for n, v, how in missing if how == 'build']
    out(f".whl/: fetching {', '.join(dl + bl)}")
    if dl: subprocess.run(pip + ['download', '--no-deps', '--only-binary=:all:', '--python-version', '3.12', '--implementation', 'cp',
                                 *[x for p in PLATFORMS for x in ('--platform', p)], '-d', str(whl), *dl], check=True)
    if bl: subprocess.run(pip + ['wheel', '--no-deps', '--no-build-isolation', '-w', str(whl), *bl], check=True)
    missing, extra = wheels_state(whl)
    if missing: out(f"gpu_prepare: .whl/ still lacks {', '.join(f'{n}=={v}' for n, v, _ in missing)}")
    return not missing and not extra

def make_gpudata(root:Path, src:Path, check_only:bool=False, out=print) -> bool:
    dst = root / '.gpudata' / 'cifar10' / 'train.tar.gz'
    ok = dst.is_file() and (not src.is_file() or dst.stat().st_size == src.stat().st_size)
    if check_only:
        out(f".gpudata/: {'complete' if ok else 'incomplete (no cifar10/train.tar.gz, or not the size of ' + str(src) + ')'}")
        return ok and (root / '.gpudata' / 'commit').is_file()
    if not ok:
        if not src.is_file(): out(f"gpu_prepare: no CIFAR-10 archive at {src} (--cifar PATH)"); return False
        dst.parent.mkdir(parents=True, exist_ok=True); shutil.copyfile(src, dst); out(f".gpudata/: copied {src} ({mib(src.stat().st_size):.1f} MiB)")
    else: out(".gpudata/: cifar10/train.tar.gz complete, reused")
    head = git(root, 'rev-parse', 'HEAD').decode().strip()
    (root / '.gpudata' / 'commit').write_text(head + '\n')   # the device's copy has no .git: gpu_check's env part reads this
    return True

# ---------------------------------------------------------------------------------------------------- main
def main(argv=None, out=print) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    g.add_argument('--check-only', action='store_true', help='only measure and check (make and delete nothing)')
    g.add_argument('--slim', action='store_true', help='also delete from the working tree the tracked files the check does not read')
    g.add_argument('--restore', action='store_true', help=f'bring back what --slim deleted ({RESTORE}, deleted files only)')
    ap.add_argument('--root', default=str(ROOT), help='the repository (default: this one)')
    ap.add_argument('--carry', nargs='*', default=list(CARRY), help='the paths the call carries')
    ap.add_argument('--cifar', default=str(CIFAR), help='CIFAR-10 train.tar.gz to copy into .gpudata/cifar10/')
    ap.add_argument('--limit-mib', type=float, default=LIMIT_MIB, help='what one call may carry')
    ap.add_argument('--keep', nargs='*', default=None, help='run folders the check reads (default: gpu_check.READS)')
    a = ap.parse_args(argv)
    root = Path(a.root).resolve()
    keep = reads() if a.keep is None else tuple(a.keep)
    if a.restore:
        restore(root, out); report(measure(root, a.carry, keep, estimate=True, limit_mib=a.limit_mib), out); return 0
    ready = True
    if '.whl' in a.carry:
        if a.check_only:
            missing, extra = wheels_state(root / '.whl')
            out(f".whl/: {'complete' if not missing else 'missing ' + ', '.join(n for n, _, _ in missing)}{'; extra files ' + ', '.join(extra) if extra else ''}")
            ready &= not missing and not extra
        else:
            try: ready &= make_whl(root / '.whl', out)
            except subprocess.CalledProcessError as e: out(f"gpu_prepare: making .whl/ failed: {e}"); return 1
    if '.gpudata' in a.carry: ready &= make_gpudata(root, Path(a.cifar), a.check_only, out)
    if a.slim and slim(root, keep, out): return 1
    m = measure(root, a.carry, keep, estimate=a.check_only, limit_mib=a.limit_mib)
    report(m, out)
    if m['now'] > m['limit']: out(refusal(m)); return 2
    if not ready: out("gpu_prepare: not ready: .whl/ or .gpudata/ incomplete (run without --check-only to make them)"); return 3
    out(f"ready: {mib(m['now']):.1f} MiB travels. The call: run(command=\"bash bench/gpu_check.sh\", carry={list(a.carry)!r}, timeout_s=600)"
        .replace("'", '"'))
    if m['slimmed']: out(f"afterwards: {RESTORE}   (or: .venv/bin/python bench/gpu_prepare.py --restore)")
    return 0

if __name__ == '__main__': sys.exit(main())
