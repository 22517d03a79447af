"""Read each processed docs page with pandoc's markdown reader, as quarto does, and list what would render wrongly.

quarto cannot be installed here, but the markdown reader it runs is pandoc's, and pandoc can (Debian:
`apt-get install -y pandoc`). `pandoc_problems(nb)` takes a page as `proc_nbs` wrote it to `_proc/` (a
NotebookNode or plain dict), assembles the markdown that quarto's Jupyter engine hands pandoc for it, reads
it with one pandoc call, and returns one readable line per defect, naming the cell index in the processed
page (`cell 5`, or `cell 5 output` for what a code cell printed, e.g. a show_doc entry).

What quarto feeds pandoc (quarto-cli src/core/jupyter/jupyter.ts, `jupyterToMarkdown`), mirrored here:
- the front matter cell (first cell, raw, `---` YAML) as is, at the top (pandoc reads it as YAML metadata);
- markdown cells (and raw cells without a raw mimetype) as they are, cells separated by a blank line;
- code cells: `#|` option lines taken out (`include: false` drops the cell, `echo: false` the code,
  `output: false` the outputs); the code fenced with one backtick more than its longest run (>= 3), all in a
  `::: {.cell}` div; each output in a `::: {.cell-output ...}` div, except under `output: asis`, where
  outputs and the cell div are left out and the output's markdown/stdout goes into the page as is (that is
  how nbdev's show_doc cells, `#| echo: false` + `#| output: asis`, reach the page);
- outputs by quarto's HTML priority: text/html (kept aside by quarto and never parsed by pandoc, so left out
  here), text/markdown as markdown, images (nothing to check), text/plain / streams / errors fenced.

The reader: `-f markdown`, pandoc's own markdown with its default extensions, no more, no fewer. That is
what quarto reads .qmd and notebook markdown with: its reader (src/resources/pandoc/datadir/readqmd.lua)
calls `pandoc.read` with format "markdown" and `pandoc.format.extensions 'markdown'` unless a document sets
`from:` (this project does not); it only turns `table_attributes` off, an extension pandoc 2.17 does not
have. The defaults include tex_math_dollars, raw_html, raw_tex, native_divs, fenced_divs, bracketed_spans,
yaml_metadata_block, pipe_tables, blank_before_header and blank_before_blockquote. Neither
tex_math_single_backslash nor lists_without_preceding_blankline is on: that is where pandoc parts from
Jupyter's renderer. Debian 12's pandoc is 2.17; quarto ships pandoc 3.x. Their markdown readers agree on
what this check looks at, to our knowledge (3.x adds a Figure block, which the walker also reads).

The writer: `-t html --mathml`, so that pandoc's TeX math converter (texmath) reads every formula and
warns about those it cannot parse. MathJax, quarto's HTML math, knows a few macros texmath does not (`{\\rm x}`,
`\\Bigl`, `\\color`, ...): such formulas are tried again with texmath equivalents (_MATHJAX_COMPAT) before
they count.

Defect classes (one problem string each, `<where>: <class>: <detail>`):
  pandoc failed          pandoc exited non-zero (e.g. front matter YAML it cannot read)
  pandoc warning         a WARNING pandoc logged (--log): duplicate link reference, duplicate note, note
                         defined but not used, duplicate identifier, YAML trouble, ...
  bad TeX math           math texmath could not parse (unbalanced braces, unknown environment, ...)
  literal $              a `$` left as text outside code: math not closed, or `$ x$` / `$x $` (pandoc wants
                         no space inside the dollars, and no digit right after the closing one); write `\\$`
                         for a dollar sign
  \\( \\[ not math        `\\(...\\)` / `\\[...\\]` render as plain "(...)" / "[...]" in pandoc markdown
  raw TeX dropped        TeX outside math (`\\alpha`, `\\begin{...}`) becomes raw LaTeX, dropped from HTML
  unterminated fence     a code block that runs into a later cell (or to the end of the page)
  ::: as text            a `:::` line pandoc left as text: a div never closed (pandoc then reads no div at
                         all), a closing fence with nothing open, or attributes it cannot read
  unclosed div           a `:::` div running to the end of the page (pandoc 2.17 never reads one; kept for 3.x)
  raw HTML swallows      raw HTML (`<!--`, `<pre>`, `<script>`, ...) that runs into a later cell
  unbalanced HTML        a raw HTML tag never closed, or a closing tag with nothing open
  empty link target      `[text]()` or `![alt]()`
  heading without space  `#Heading` (pandoc, like CommonMark, needs `# Heading`)
  merged into paragraph  a heading / list / block quote / table line right under a paragraph line: pandoc
                         needs a blank line before it and prints it as paragraph text (Jupyter does not)
  unresolved reference   `[text][ref]` or `[^note]` left as text: no such reference / footnote
  literal <!--           an HTML comment opener left as text

`have_pandoc()` says whether pandoc is on PATH; without it `pandoc_problems` returns one problem saying how
to install it. `self_test()` runs a constructed page per defect class (and a clean page) and returns
`(name, expected_fragment, problems)` triples, asserting each is caught. `pandoc_problems(nb, html_path=...)`
also writes the page as pandoc renders it (standalone HTML, MathML math) to html_path.
"""
import json, os, re, shutil, subprocess, tempfile
from bisect import bisect_right
from html.parser import HTMLParser

READER = "markdown"                                   # pandoc's markdown, default extensions (see above)
WRITER_ARGS = ["-t", "html", "--mathml"]              # texmath reads every formula and logs what it can't
INSTALL_HINT = ("pandoc is not installed, so the docs pages were not read with quarto's markdown reader: "
                "`apt-get install -y pandoc` (Debian/Ubuntu), or see https://pandoc.org/installing.html")
TIMEOUT_S = 120

# Placeholders (private-use characters) for backslash escapes whose meaning the AST would hide: `\$` (a real
# dollar sign, not broken math) and `\(`, `\)`, `\[`, `\]` (TeX delimiters pandoc does not treat as math).
# They are put in before pandoc reads the markdown and put back by a Lua filter before pandoc writes HTML.
_PH = {"$": "\ue024", "(": "\ue028", ")": "\ue029", "[": "\ue05b", "]": "\ue05d"}
_PH_BACK = {v: k for k, v in _PH.items()}
_ESCAPE = re.compile(r"\\([\\$()\[\]])")
_MARK = "pandoc_check:"
_MARK_RE = re.compile(r"<!--" + _MARK + r"(\d+(?::out)?|end)-->")
_OPT_LINE = re.compile(r"^#\|\s?(.*)$")

# TeX that MathJax (quarto's HTML math) renders but texmath (pandoc 2.17's converter) does not parse. A formula
# texmath rejects is rewritten with these texmath equivalents and tried once more (one more pandoc call for all
# such formulas of a page); only if it still fails is it reported. The rewrite is for parsing only.
_NL = r"(?![A-Za-z])"
_MATHJAX_COMPAT = [
    (re.compile(r"\{\s*\\(rm|bf|it|cal|sf|tt)" + _NL + r"\s*([^{}]*)\}"), r"{\\math\1{\2}}"),  # {\rm x} -> {\mathrm{x}}
    (re.compile(r"\\(rm|bf|it|cal|sf|tt)" + _NL), r"\\math\1"),
    (re.compile(r"\\operatorname\*"), r"\\operatorname"),
    (re.compile(r"\\([Bb]igg?)[lrm]" + _NL), r"\\\1"),
    (re.compile(r"\\(?:eqref|ref)" + _NL), r"\\text"),
    (re.compile(r"\\cancelto\s*\{[^{}]*\}"), r"\\overline"),
    (re.compile(r"\\[bx]?cancel" + _NL), r"\\overline"),
    (re.compile(r"\\(?:color|textcolor|require|cssId|class|style|label)\s*\{[^{}]*\}"), ""),
    (re.compile(r"\\bmod" + _NL), r"\\mathbin{mod}"),
    (re.compile(r"\\unicode\s*\{[^{}]*\}"), "x"),
    (re.compile(r"\\fbox" + _NL), r"\\boxed"),
    (re.compile(r"\\(?:smash|mathclap|mathllap|mathrlap|nonumber|notag)" + _NL), ""),
    (re.compile(r"\\[hv]phantom" + _NL), r"\\phantom"),
]

def _mathjax_compat(tex: str) -> str:
    for pat, rep in _MATHJAX_COMPAT: tex = pat.sub(rep, tex)
    return tex

_DUMP_LUA = """-- pandoc_check: write the document as read (JSON AST) to stdout, before anything changes it
function Pandoc(doc) io.stdout:write(pandoc.write(doc, "json")) end
"""
_RESTORE_LUA = """-- pandoc_check: put back the escapes the checker replaced by placeholders
local text = {%(text)s}
local verb = {%(verb)s}
local function sub(s, map) for k, v in pairs(map) do s = s:gsub(k, v) end return s end
local function t(el) el.text = sub(el.text, text) return el end
local function v(el) el.text = sub(el.text, verb) return el end
return {{Pandoc = function(doc)
  return doc:walk{Str = t, Code = v, CodeBlock = v, Math = v, RawInline = v, RawBlock = v}
end}}
"""


def _lua_str(s): return '"' + "".join(c if c.isalnum() else "\\u{%x}" % ord(c) for c in s) + '"'

_RESTORE = _RESTORE_LUA % {
    "text": ", ".join(f"[{_lua_str(p)}] = {_lua_str(c)}" for c, p in _PH.items()),
    "verb": ", ".join(f"[{_lua_str(p)}] = {_lua_str(chr(92) + c)}" for c, p in _PH.items())}


def have_pandoc() -> bool:
    "Is pandoc on PATH?"
    return shutil.which("pandoc") is not None


def pandoc_version() -> str:
    "pandoc's first `--version` line, or '' without pandoc"
    if not have_pandoc(): return ""
    return subprocess.run(["pandoc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]


# ---------------------------------------------------------------------------------------------------
# The markdown quarto hands pandoc for a page
# ---------------------------------------------------------------------------------------------------
def _get(o, k, default=None):
    try: return o[k]
    except (KeyError, IndexError, TypeError): return default

def _text(v) -> str: return "".join(v) if isinstance(v, list) else (v or "")

def _escapes(md: str) -> str:
    "`\\$` `\\(` `\\)` `\\[` `\\]` -> placeholders (an escaped backslash stays as it is)"
    return _ESCAPE.sub(lambda m: m.group(0) if m.group(1) == "\\" else _PH[m.group(1)], md)

def _cell_options(src: str):
    "quarto's split of a code cell into its leading `#|` option lines (parsed as YAML) and the code"
    lines, opts = src.split("\n"), []
    while lines and _OPT_LINE.match(lines[0]): opts.append(_OPT_LINE.match(lines.pop(0)).group(1))
    try:
        import yaml
        parsed = yaml.safe_load("\n".join(opts)) if opts else {}
    except Exception: parsed = {}
    while lines and not lines[0].strip(): lines.pop(0)   # trimEmptyLines(source, "leading")
    return (parsed if isinstance(parsed, dict) else {}), "\n".join(lines)

def _fence(text: str, info: str = "") -> str:
    runs = [len(r) for r in re.findall(r"`+", text)]
    ticks = "`" * max(3, max(runs, default=0) + 1)
    return f"{ticks}{info}\n{text}{'' if text.endswith(chr(10)) else chr(10)}{ticks}\n"

def _falsy(v): return v is False or (isinstance(v, str) and v.strip().lower() in ("false", "no"))

def _output_md(o, asis: bool):
    "(markdown, is_markdown) for one output, as quarto's jupyterToMarkdown writes it for HTML"
    t = _get(o, "output_type")
    if t == "stream":
        s = _text(_get(o, "text"))
        if asis and _get(o, "name") == "stdout": return s, True
        return _fence(s), False
    if t == "error":
        return _fence(f"{_get(o, 'ename', '')}: {_get(o, 'evalue', '')}"), False
    data = _get(o, "data") or {}
    if "text/html" in data or any(k.startswith("application/") for k in data):
        return "", False     # kept aside by quarto (removeAndPreserveHtml) and put back after pandoc
    if "text/markdown" in data: return _text(data["text/markdown"]) + "\n", True
    if any(k.startswith("image/") for k in data): return "", False
    if "text/latex" in data:
        lx = _text(data["text/latex"]).strip()
        if lx.startswith("$") and lx.endswith("$") or lx.startswith("\\begin{"): return lx + "\n", True
    if "text/plain" in data: return _fence(_text(data["text/plain"])), False
    return "", False

def assemble(nb):
    """The markdown for page `nb` and where each cell starts in it: (text, [(first_line, label), ...]).
    Each cell (and each output) is preceded by an HTML comment marker `<!--pandoc_check:N-->`, on its own
    between blank lines, so problems found in pandoc's AST can be traced to their cell."""
    parts, where, line = [], [], 1
    def add(s, label=None):
        nonlocal line
        if label is not None: where.append((line, label))
        parts.append(s); line += s.count("\n")
    def mark(label): add(f"<!--{_MARK}{label}-->\n\n", label)

    cells = list(_get(nb, "cells") or [])
    for i, c in enumerate(cells):
        kind, src = _get(c, "cell_type"), _text(_get(c, "source"))
        if i == 0 and kind == "raw" and src.startswith("---"):
            add(src.rstrip("\n") + "\n\n", "frontmatter"); continue
        if kind == "markdown" or kind == "raw":
            meta = _get(c, "metadata") or {}
            fmt = _get(meta, "raw_mimetype") or _get(meta, "format")
            mark(str(i))
            if kind == "raw" and fmt:
                fmtname = {"text/html": "html", "text/latex": "latex", "text/restructuredtext": "rst"}.get(fmt, fmt)
                add(_fence(src, "{=" + fmtname.split("/")[-1] + "}") + "\n")
            else: add(_escapes(src) + ("" if src.endswith("\n") else "\n") + "\n")
            continue
        if kind != "code": continue
        opts, code = _cell_options(src)
        outputs = list(_get(c, "outputs") or [])
        if _falsy(opts.get("include")) or (not src.strip() and not outputs): continue
        asis = str(opts.get("output", "")).strip().lower() == "asis"
        body = []
        if not _falsy(opts.get("echo", True)): body.append(("code", _fence(code, " {.python .cell-code}")))
        if not _falsy(opts.get("output", True)):
            for o in outputs:
                md, is_md = _output_md(o, asis)
                if not md and not asis: continue
                if asis: body.append(("out", md))
                else:
                    kindcls = {"stream": f".cell-output-{_get(o, 'name', 'stdout')}", "error": ".cell-output-error",
                               "execute_result": ".cell-output-display", "display_data": ".cell-output-display"}
                    cls = kindcls.get(_get(o, "output_type"), ".cell-output-display")
                    body.append(("open", f"::: {{.cell-output {cls}{' .cell-output-markdown' if is_md else ''}}}\n"))
                    body.append(("out", md)); body.append(("close", ":::\n"))
        if not body: continue
        mark(str(i))
        if not asis: add("::: {.cell}\n")
        for what, s in body:
            if what == "out":
                if not s: continue
                if asis or s.strip(): add(f"\n<!--{_MARK}{i}:out-->\n\n", f"{i}:out")
                add(_escapes(s) if s and not s.startswith("```") else s)
            else: add(s)
        if not asis: add(":::\n")
        add("\n")
    add(f"<!--{_MARK}end-->\n", "end")
    return "".join(parts), where


# ---------------------------------------------------------------------------------------------------
# Walking pandoc's AST
# ---------------------------------------------------------------------------------------------------
def _where(label: str) -> str:
    if label == "frontmatter": return "front matter"
    if label == "end": return "end of page"
    if label.endswith(":out"): return f"cell {label[:-4]} output"
    return f"cell {label}"

def _show(s: str, n: int = 70) -> str:
    s = _MARK_RE.sub(" ", _restore(s))
    s = re.sub(r"\s+", " ", s).strip()
    return repr(s if len(s) <= n else s[:n - 1] + "…")

def _verbatim(s: str) -> str:
    "Code/math/raw text as paragraph text for the checks: escapes put back, brackets (no links in there) dropped"
    return re.sub(r"[\[\]\n]", "", _restore(s))

def _stringify(inl) -> str:
    out = []
    def go(x):
        if isinstance(x, list):
            for y in x: go(y)
            return
        if not isinstance(x, dict): return
        t, c = x.get("t"), x.get("c")
        if t == "Str": out.append(c)
        elif t in ("Space", "SoftBreak", "LineBreak"): out.append(" " if t == "Space" else "\n")
        elif t == "Code": out.append("`" + _verbatim(c[1]) + "`")
        elif t == "Math": out.append("$" + _verbatim(c[1]) + "$")
        elif t == "RawInline": out.append(_verbatim(c[1]))
        elif t in ("Link", "Image"): out.append("["); go(c[1]); out.append("](" + c[2][0] + ")")
        elif t in ("Emph", "Strong", "Strikeout", "Superscript", "Subscript", "SmallCaps", "Underline"): go(c)
        elif t == "Quoted": out.append('"'); go(c[1]); out.append('"')
        elif t == "Span": go(c[1])
        elif t == "Cite": go(c[1])
        elif t == "Note": pass
    go(inl)
    return "".join(out)


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
_OPTIONAL_END = {"p", "li", "dt", "dd", "tr", "td", "th", "thead", "tbody", "tfoot", "option", "optgroup",
                 "colgroup", "rp", "rt", "html", "head", "body"}

class _Tags(HTMLParser):
    "Open/close balance of raw HTML across a page"
    def __init__(self):
        super().__init__(convert_charrefs=True); self.stack, self.stray, self.label = [], [], ""
    def handle_starttag(self, tag, attrs):
        if tag not in _VOID and tag not in _OPTIONAL_END: self.stack.append((tag, self.label, self.get_starttag_text()))
    def handle_endtag(self, tag):
        if tag in _VOID or tag in _OPTIONAL_END: return
        for k in range(len(self.stack) - 1, -1, -1):
            if self.stack[k][0] == tag: del self.stack[k:]; return   # closes it (and anything left open inside)
        self.stray.append((tag, self.label))


class _Walker:
    def __init__(self, where):
        self.where, self.cur, self.problems, self.maths, self.tags = where, "0", [], [], _Tags()
        self.seen, self.ids = set(), {}

    def report(self, label, cls, detail):
        p = f"{_where(label)}: {cls}: {detail}"
        if p not in self.seen: self.seen.add(p); self.problems.append(p)

    def marks(self, s):
        return _MARK_RE.findall(s) if isinstance(s, str) and _MARK in s else []

    # blocks -------------------------------------------------------------------------------------
    def blocks(self, bs):
        for b in bs or []: self.block(b)

    def block(self, b):
        t, c = b.get("t"), b.get("c")
        if t == "RawBlock":
            fmt, text = c
            m = _MARK_RE.fullmatch(text.strip())
            if m: self.cur = m.group(1); return
            inside = self.marks(text)
            if inside:
                self.report(self.cur, "raw HTML swallows", f"raw {fmt} starting here runs on into "
                            f"{_where(inside[-1])} (an unclosed `<!--`, `<pre>`, `<script>`, `<style>`?): {_show(text)}")
                self.cur = inside[-1]; return
            if fmt in ("tex", "latex"):
                self.report(self.cur, "raw TeX dropped", f"TeX outside math is raw LaTeX, left out of the HTML page: {_show(text)}")
            elif fmt == "html": self.html(text)
            return
        if t == "CodeBlock":
            inside = self.marks(c[1])
            if inside:
                end = "the end of the page" if "end" in inside else _where(inside[-1])
                first = c[1].split("\n", 1)[0]
                self.report(self.cur, "unterminated fence", f"a code block starting here runs on into {end} "
                            f"(a ``` fence not closed?): {_show(first)}")
                self.cur = inside[-1]
            return
        if t in ("Para", "Plain"): self.para(c); return
        if t == "Header":
            self.ids.setdefault(c[1][0], []).append(self.cur)
            self.inlines(c[2]); return
        if t == "Div":
            start = self.cur
            (ident, classes, kv), content = c
            if ident: self.ids.setdefault(ident, []).append(self.cur)
            self.blocks(content)
            if self.cur == "end":
                attrs = " ".join([f"#{ident}"] * bool(ident) + [f".{k}" for k in classes] + [f"{k}={v}" for k, v in kv])
                self.report(start, "unclosed div", f"the `::: {{{attrs}}}` div opened here is never closed "
                            "(it runs to the end of the page)")
            return
        if t == "BlockQuote": self.blocks(c); return
        if t in ("BulletList",):
            for item in c: self.blocks(item)
            return
        if t == "OrderedList":
            for item in c[1]: self.blocks(item)
            return
        if t == "DefinitionList":
            for term, defs in c:
                self.inlines(term)
                for d in defs: self.blocks(d)
            return
        if t == "LineBlock":
            for l in c: self.inlines(l)
            return
        if t == "Table": self.table(c); return
        if t == "Figure":  # pandoc 3
            self.blocks(c[1][1]); self.blocks(c[2]); return

    def table(self, c):
        _attr, caption, _specs, head, bodies, foot = c
        self.blocks(caption[1])
        def rows(rs):
            for _a, cells in rs:
                for cell in cells: self.blocks(cell[4])
        rows(head[1])
        for body in bodies: rows(body[2]); rows(body[3])
        rows(foot[1])

    def para(self, inl):
        self.inlines(inl)
        text = _stringify(inl)
        lines = text.split("\n")
        first = lines[0]
        if re.match(r"#{1,6}[^\s#]", first):
            self.report(self.cur, "heading without space", f"`#` needs a space after it to make a heading: {_show(first)}")
        if first.startswith(":::"):
            if first.strip(": \t"):
                self.report(self.cur, "::: as text", f"pandoc left this div fence as text: the div is never closed "
                            f"(pandoc needs a closing `:::`) or its attributes can't be read: {_show(first)}")
            else:
                self.report(self.cur, "::: as text", f"pandoc left this closing `:::` as text: no div is open here: {_show(first)}")
        said = set()
        for prev, line in zip(lines, lines[1:]):
            what = None
            if re.match(r"#{1,6} ", line): what = "heading"
            elif re.match(r"[-*+] \S", line) or re.match(r"1[.)] \S", line): what = "list"
            elif re.match(r"> ", line): what = "block quote"
            elif re.match(r"\|.*\|\s*$", line): what = "table row"
            elif line.startswith(":::"): what = "`:::` div fence"
            if what and what not in said:
                said.add(what)
                self.report(self.cur, "merged into paragraph", f"this {what} line follows a paragraph line with no "
                            f"blank line between, so pandoc prints it as paragraph text: {_show(prev[-30:] + ' / ' + line)}")
        for o, c in (("(", ")"), ("[", "]")):
            m = re.search(re.escape(_PH[o]) + ".*?" + re.escape(_PH[c]), text, re.DOTALL)
            if m:
                self.report(self.cur, "\\( \\[ not math", f"`\\{o}...\\{c}` is not math in pandoc markdown (it renders as "
                            f"plain `{o}...{c}`; Jupyter's MathJax shows math); use `$...$` / `$$...$$`: {_show(m.group(0))}")
        for m in re.finditer(r"\[[^\[\]\n]+\]\[[^\[\]\n]*\]|\[\^[^\[\]\s]+\]", text):
            self.report(self.cur, "unresolved reference", f"no such link reference / footnote, left as text: {_show(m.group(0))}")

    # inlines ------------------------------------------------------------------------------------
    def inlines(self, xs):
        for x in xs or []: self.inline(x)

    def inline(self, x):
        t, c = x.get("t"), x.get("c")
        if t == "Str":
            if "$" in c:
                self.report(self.cur, "literal $", f"a `$` pandoc left as text (math not closed, a space inside "
                            f"the dollars, or a digit after the closing one; `\\$` for a dollar sign): {_show(c)}")
            if "<!--" in c:
                self.report(self.cur, "literal <!--", f"an HTML comment opener left as text: {_show(c)}")
            return
        if t == "Math": self.maths.append((c[1], self.cur)); return
        if t == "RawInline":
            fmt, text = c
            if fmt in ("tex", "latex"):
                self.report(self.cur, "raw TeX dropped", f"TeX outside math is raw LaTeX, left out of the HTML page: {_show(text)}")
            elif fmt == "html": self.html(text)
            return
        if t in ("Link", "Image"):
            self.inlines(c[1])
            if not c[2][0].strip():
                self.report(self.cur, "empty link target", f"{'image' if t == 'Image' else 'link'} with an empty target: "
                            f"{_show(('!' if t == 'Image' else '') + '[' + _stringify(c[1]) + ']()')}")
            return
        if t in ("Emph", "Strong", "Strikeout", "Superscript", "Subscript", "SmallCaps", "Underline"): self.inlines(c); return
        if t == "Quoted": self.inlines(c[1]); return
        if t in ("Span", "Cite"): self.inlines(c[1]); return
        if t == "Note": self.blocks(c); return

    def html(self, text):
        if text.lstrip().startswith("<!--"): return
        self.tags.label = self.cur
        try: self.tags.feed(text)
        except Exception: pass

    def meta(self, m):
        "Inline checks on the front matter fields pandoc reads as markdown (title, description, ...)"
        saved, self.cur = self.cur, "frontmatter"
        def go(v):
            t, c = v.get("t"), v.get("c")
            if t == "MetaInlines": self.inlines(c)
            elif t == "MetaBlocks": self.blocks(c)
            elif t == "MetaList":
                for y in c: go(y)
            elif t == "MetaMap":
                for y in c.values(): go(y)
        for v in m.values(): go(v)
        self.cur = saved

    def finish(self):
        for tag, label, text in self.tags.stack:
            self.report(label, "unbalanced HTML", f"raw `<{tag}>` is never closed (quarto passes it through, and the rest of the page ends up inside it): {_show(text)}")
        for tag, label in self.tags.stray:
            self.report(label, "unbalanced HTML", f"raw `</{tag}>` closes nothing")


# ---------------------------------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------------------------------
def _run_pandoc(md: str, html_path=None, title="page"):
    "pandoc's JSON AST of `md` as read, its WARNING log entries, its exit status and stderr"
    with tempfile.TemporaryDirectory(prefix="pandoc_check_") as d:
        src, log = os.path.join(d, "page.md"), os.path.join(d, "log.json")
        dump, restore = os.path.join(d, "dump.lua"), os.path.join(d, "restore.lua")
        for p, s in ((src, md), (dump, _DUMP_LUA), (restore, _RESTORE)):
            with open(p, "w", encoding="utf-8") as f: f.write(s)
        out = ["--standalone", "--metadata", f"pagetitle={title}", "-o", str(html_path)] if html_path else ["-o", os.devnull]
        cmd = ["pandoc", "-f", READER, *WRITER_ARGS, "--quiet", f"--log={log}",
               f"--lua-filter={dump}", f"--lua-filter={restore}", *out, src]
        try: r = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired: return None, [], "timeout", f"pandoc took over {TIMEOUT_S}s on this page"
        try:
            with open(log, encoding="utf-8") as f: entries = json.load(f)
        except (OSError, ValueError): entries = []
        try: ast = json.loads(r.stdout) if r.stdout.strip() else None
        except ValueError: ast = None
        return ast, [e for e in entries if e.get("verbosity") in ("WARNING", "ERROR")], r.returncode, r.stderr


_WARNINGS = {   # pandoc's log entry types, as a reader would say them
    "DuplicateLinkReference": lambda d: f"link reference {d['contents']} is defined twice (the first one wins)",
    "DuplicateNoteReference": lambda d: f"footnote {d['contents']} is defined twice",
    "NoteDefinedButNotUsed": lambda d: f"footnote [^{d['key']}] is defined but never cited (it is not shown)",
    "DuplicateIdentifier": lambda d: f"id #{d['contents']} is used twice (links to it go to the first)",
    "CouldNotParseYamlMetadata": lambda d: f"YAML block not read: {d.get('message', '')}",
}


def _texmath_failures(formulas, api_version) -> dict:
    "Which of `formulas` texmath cannot parse either: {formula: message}; one pandoc call for all"
    doc = {"pandoc-api-version": api_version, "meta": {},
           "blocks": [{"t": "Para", "c": [{"t": "Math", "c": [{"t": "InlineMath"}, f]}]} for f in formulas]}
    with tempfile.TemporaryDirectory(prefix="pandoc_check_") as d:
        src, log = os.path.join(d, "math.json"), os.path.join(d, "log.json")
        with open(src, "w", encoding="utf-8") as f: json.dump(doc, f)
        subprocess.run(["pandoc", "-f", "json", *WRITER_ARGS, "--quiet", f"--log={log}", "-o", os.devnull, src],
                       capture_output=True, text=True, timeout=TIMEOUT_S)
        try:
            with open(log, encoding="utf-8") as f: entries = json.load(f)
        except (OSError, ValueError): return {}
    return {e.get("contents", ""): e.get("message") or "" for e in entries if e.get("type") == "CouldNotConvertTeXMath"}


def _restore(s: str) -> str: return "".join("\\" + _PH_BACK[ch] if ch in _PH_BACK else ch for ch in s)

def pandoc_problems(nb, html_path=None) -> list:
    """What quarto's markdown reader (pandoc) would render wrongly in processed page `nb`: one string per
    defect, naming the cell. With `html_path`, pandoc's standalone HTML rendering of the page is written there."""
    if not have_pandoc(): return [INSTALL_HINT]
    md, where = assemble(nb)
    title = os.path.splitext(os.path.basename(str(html_path)))[0] if html_path else "page"
    ast, log, rc, err = _run_pandoc(md, html_path, title)
    problems = []
    if rc != 0 or ast is None:
        return [f"page: pandoc failed (exit {rc}): {err.strip()[:600]}"]

    w = _Walker(where)
    w.meta(ast.get("meta", {}))
    w.blocks(ast.get("blocks", []))
    w.finish()

    starts = [ln for ln, _ in where]
    def label_at(line):
        k = bisect_right(starts, line) - 1
        return where[k][1] if k >= 0 else "frontmatter"
    bad_math = {}      # formula -> texmath's message, for those that fail even in their MathJax-compatible form
    retry = {}
    for e in log:
        if e.get("type") != "CouldNotConvertTeXMath": continue
        tex = e.get("contents", "")
        if _mathjax_compat(tex) != tex: retry[_mathjax_compat(tex)] = tex
        else: bad_math[tex] = e.get("message") or ""
    if retry:
        for tex, msg in _texmath_failures(list(retry), ast.get("pandoc-api-version")).items(): bad_math[retry[tex]] = msg
    for tex, msg in bad_math.items():
        label = next((lab for m, lab in w.maths if _restore(m) == tex), "0")
        msg = msg.strip().split("\n")
        w.report(label, "bad TeX math", f"{_show(tex)} does not parse as TeX math"
                 + (f" ({msg[2].strip()})" if len(msg) > 2 else ""))
    for e in log:
        typ = e.get("type", "")
        if typ == "CouldNotConvertTeXMath": continue
        line = e.get("line")
        label = label_at(line) if isinstance(line, int) else "0"
        if typ == "DuplicateIdentifier" and len(w.ids.get(e.get("contents"), [])) > 1:
            label = w.ids[e["contents"]][1]    # pandoc logs the position after the block; the AST knows better
        detail = {k: v for k, v in e.items() if k not in ("type", "verbosity", "source", "line", "column")}
        say = _WARNINGS.get(typ)
        try: text = say(detail) if say else json.dumps(detail, ensure_ascii=False)[:200]
        except Exception: text = json.dumps(detail, ensure_ascii=False)[:200]
        w.report(label, "pandoc warning", f"{typ}: {text}")
    problems.extend(w.problems)
    return problems


# ---------------------------------------------------------------------------------------------------
# Constructed pages, one per defect class
# ---------------------------------------------------------------------------------------------------
def _page(*cells):
    "A processed-page-like dict: cells given as ('md', src) / ('raw', src) / ('code', src, [outputs])"
    out = [{"cell_type": "raw", "metadata": {}, "source": "---\ntitle: Test page\ndescription: a page\n---\n"}]
    for c in cells:
        if c[0] == "md": out.append({"cell_type": "markdown", "metadata": {}, "source": c[1]})
        elif c[0] == "raw": out.append({"cell_type": "raw", "metadata": {}, "source": c[1]})
        else: out.append({"cell_type": "code", "metadata": {}, "source": c[1], "execution_count": 1,
                          "outputs": list(c[2]) if len(c) > 2 else []})
    return {"cells": out, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}

def _md_out(md):
    return {"output_type": "execute_result", "execution_count": 1, "metadata": {},
            "data": {"text/markdown": md, "text/plain": "<IPython.core.display.Markdown object>"}}

def _show_doc(md): return ("code", "#| echo: false\n#| output: asis\nshow_doc(f)", [_md_out(md)])

_CLEAN = _page(
    ("md", "# Heading\n\nInline $\\sigma(x)=1/(1+e^{-x})$ and display\n\n$$\\mathbb{E}[L]=0,\\quad \\operatorname{Var}L=\\pi^2/3$$\n\n"
           "It costs \\$5, not \\$6. Code `a $ b` and [a link](https://example.com). A list:\n\n- one\n- two\n\n"
           "| a | b |\n|---|---|\n| 1 | 2 |\n\n::: {.callout-note}\nA note.\n:::\n\n<details><summary>More</summary>\n\nHidden *text*.\n\n</details>"),
    ("code", "#| echo: false\nx = '$ ``` :::'\nprint(x)", [{"output_type": "stream", "name": "stdout", "text": "$ ``` :::\n"}]),
    _show_doc("---\n\n[source](https://example.com/f.py#L1){target=\"_blank\" style=\"float:right; font-size:smaller\"}\n\n"
              "### f\n\n```python\ndef f(\n    x:int, # the input $x$\n)->int:\n```\n\n*Returns $x^2$*\n\n"
              "|    | **Type** | **Default** | **Details** |\n| -- | -------- | ----------- | ----------- |\n| x | int | | the input $x$ |"),
    ("md", "Text with a [reference link][ref] and code `x[i][j]`, `\\(a\\)`.\n\n[ref]: https://example.com"),
    ("code", "#| include: false\nx = '$'", []),
)

SELF_TEST_CASES = [
    # (name, page, fragment each expected problem contains)
    ("unclosed $ math", _page(("md", "The noise $L=\\log u - \\log(1-u) has CDF $\\sigma$ here, and $x")), "cell 1: literal $"),
    ("space inside $...$", _page(("md", "Wrong: $ x^2 $ stays text.")), "cell 1: literal $"),
    ("MathJax-only TeX is fine, bad TeX beside it is not", _page(("md", "Fine: $L_{\\rm mean}$, $\\Bigl(x\\Bigr)$; broken: $\\frac{\\rm a}{$.")),
     "cell 1: bad TeX math: '\\\\frac{\\\\rm a}{'"),
    ("unparsable TeX", _page(("md", "Broken: $\\frac{1}{$ and fine $x$.")), "cell 1: bad TeX math"),
    ("bad TeX in a show_doc entry", _page(_show_doc("### f\n\n*Computes $\\begin{foo} x \\end{foo}$*")), "cell 1 output: bad TeX math"),
    ("\\( \\) delimiters", _page(("md", "Jupyter shows \\(x^2\\) as math, pandoc as (x^2).")), "cell 1: \\( \\[ not math"),
    ("raw TeX outside math", _page(("md", "The rate \\alpha is small.")), "cell 1: raw TeX dropped"),
    ("unterminated fence", _page(("md", "Example:\n\n```python\nx = 1"), ("md", "More text."), ("code", "y = 2")),
     "cell 1: unterminated fence"),
    ("unclosed ::: div", _page(("md", "::: {.callout-note}\nA note that never ends."), ("code", "x = 1"), ("md", "Text.")),
     "cell 1: ::: as text"),
    ("stray :::", _page(("md", "Text.\n\n:::")), "cell 1: ::: as text"),
    ("unclosed <div>", _page(("md", "<div class=\"x\">\n\nOpened, never closed."), ("md", "Text.")), "cell 1: unbalanced HTML"),
    ("stray </span>", _page(("md", "Text </span> more.")), "cell 1: unbalanced HTML"),
    ("unclosed <!--", _page(("md", "Text.\n\n<!-- a comment never closed"), ("md", "Swallowed text.")), "cell 1: raw HTML swallows"),
    ("empty link target", _page(("md", "See [the docs]() and ![a plot]().")), "cell 1: empty link target"),
    ("heading without space", _page(("md", "#Heading")), "cell 1: heading without space"),
    ("heading under a paragraph", _page(("md", "Some text\n## Heading")), "cell 1: merged into paragraph"),
    ("list under a paragraph", _page(("md", "Steps:\n- one\n- two")), "cell 1: merged into paragraph"),
    ("table under a paragraph", _page(("md", "The table:\n| a | b |\n|---|---|\n| 1 | 2 |")), "cell 1: merged into paragraph"),
    ("unresolved reference link", _page(("md", "See [the paper][maddison17].")), "cell 1: unresolved reference"),
    ("undefined footnote", _page(("md", "A claim.[^1]")), "cell 1: unresolved reference"),
    ("duplicate link reference", _page(("md", "[a][r]\n\n[r]: https://a.example\n[r]: https://b.example")),
     "cell 1: pandoc warning: DuplicateLinkReference"),
    ("duplicate link reference in a later cell", _page(("md", "[a][r]\n\n[r]: https://a.example"), ("code", "x = 1"),
                                                       ("md", "More.\n\n[r]: https://b.example")),
     "cell 3: pandoc warning: DuplicateLinkReference"),
    ("duplicate heading id", _page(("md", "# A {#x}\n\nText."), ("md", "# B {#x}"), ("md", "More.")),
     "cell 2: pandoc warning: DuplicateIdentifier"),
    ("unused footnote", _page(("md", "Text.\n\n[^n]: A note nobody cites.")), "cell 1: pandoc warning: NoteDefinedButNotUsed"),
    ("broken front matter", {"cells": [{"cell_type": "raw", "metadata": {}, "source": "---\ntitle: [unclosed\n---\n"},
                                       {"cell_type": "markdown", "metadata": {}, "source": "Text."}]}, "pandoc"),
    ("show_doc output with a stray ::: closing its div", _page(("code", "f()", [_md_out("Result:\n\n:::\n\nmore")])),
     "cell 1 output: ::: as text"),
]


def self_test(verbose: bool = False):
    """Run the clean page and one constructed page per defect class; assert the clean page has no problem and
    each defect is caught. Returns [(name, expected, problems)]."""
    assert have_pandoc(), INSTALL_HINT
    results = [("clean page", "", pandoc_problems(_CLEAN))]
    for name, page, expected in SELF_TEST_CASES: results.append((name, expected, pandoc_problems(page)))
    failures = []
    for name, expected, probs in results:
        ok = (not probs) if not expected else any(expected in p for p in probs)
        if verbose: print(f"[{'ok' if ok else 'FAIL'}] {name}" + "".join(f"\n      {p}" for p in probs))
        if not ok: failures.append(f"{name}: expected {'no problem' if not expected else repr(expected)}, got {probs}")
    assert not failures, "pandoc_check self-test failed:\n" + "\n".join(failures)
    return results


if __name__ == "__main__":
    print(pandoc_version())
    self_test(verbose=True)
