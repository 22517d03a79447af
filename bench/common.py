"""What the benchmark scripts share: the machine they ran on, and writing their JSON and markdown results."""
import json, os, platform
from pathlib import Path
import torch

def cpu_name() -> str:
    "The CPU's model name (from /proc/cpuinfo on Linux)"
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()

def machine_info() -> dict:
    "CPU, core count, torch version and threads, Python, platform, and the load average now (`loadavg_start`)"
    return dict(cpu=cpu_name(), cpu_count=os.cpu_count(), torch=torch.__version__, threads=torch.get_num_threads(),
                python=platform.python_version(), platform=platform.platform(), loadavg_start=os.getloadavg())

def fmt_load(v) -> str: return ' '.join(f'{x:.2f}' for x in v)

def write_results(out, res:dict, md:str):
    "Print the markdown tables, write `out` (JSON) and the same path with `.md`"
    print('\n' + md)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    out.with_suffix('.md').write_text(md)
    print(f"wrote {out} and {out.with_suffix('.md')}")
