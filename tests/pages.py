"""The prose of a docs page as the claim tests read it (`test_claims.py`, `test_numbers.py`): markdown cells of a
notebook, or a markdown file, whitespace and line breaks normalised, markdown emphasis dropped."""
import json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def norm(s:str) -> str: return re.sub(r'\s+', ' ', s.replace('**', '').replace('*', ''))


def page_text(rel:str) -> str:
    p = ROOT / rel
    if p.suffix == '.ipynb':
        nb = json.loads(p.read_text())
        text = '\n'.join(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'markdown')
    else: text = p.read_text()
    return norm(text)
