"""The subset of Go templates (with Helm's and Sprig's functions) that charts/ uses.

parse() turns a template into nodes and refuses, with the file and line, any construct
or function outside the subset, even in a branch no values file takes; Renderer renders
the nodes with Helm's semantics: missing map keys are nil, a field of nil is an error,
`lookup` finds nothing (as `helm template`), random functions come from a fixed seed.
Extend the subset here, with a test in test_check_charts.py, when a chart needs more.
"""
import base64
import hashlib
import json
import random
import re
import string

import yaml

class TemplateError(Exception):
    """A template this renderer refuses or cannot render; the message names file:line."""


# ---------------------------------------------------------------- template language

ACTION_RE = re.compile(r"\{\{(-[ \t\r\n])?(.*?)([ \t\r\n]-)?\}\}", re.S)
TOKEN_RE = re.compile(r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<num>-?\d+)
  | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>:=|[|(),])
  )""", re.X)


def lex(text, fname):
    """Template text -> [("text", s, line) | ("action", body, line)], trim markers applied."""
    out, pos, trim_next = [], 0, False
    for m in ACTION_RE.finditer(text):
        chunk = text[pos:m.start()]
        if trim_next:
            chunk = chunk.lstrip(" \t\r\n")
        if m.group(1):
            chunk = chunk.rstrip(" \t\r\n")
        out.append(("text", chunk, 0))
        out.append(("action", m.group(2).strip(), text.count("\n", 0, m.start()) + 1))
        trim_next, pos = bool(m.group(3)), m.end()
    if "{{" in text[pos:]:
        raise TemplateError(f"{fname}:{text.count(chr(10), 0, pos) + 1}: unclosed action")
    out.append(("text", text[pos:].lstrip(" \t\r\n") if trim_next else text[pos:], 0))
    return out


def tokenize(body, where):
    toks, pos = [], 0
    body = body.rstrip()
    while pos < len(body):
        m = TOKEN_RE.match(body, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"{where}: cannot read {body[pos:].strip()[:30]!r} "
                                "(outside the template subset this check knows)")
        kind = m.lastgroup
        toks.append((kind, m.group(kind)))
        pos = m.end()
    return toks


def parse_pipeline(toks, where):
    """Tokens -> [command]; a command is a list of operands; '|' separates commands."""
    pos = 0

    def operand():
        nonlocal pos
        kind, val = toks[pos]
        pos += 1
        if kind == "str":
            return ("lit", json.loads(val))
        if kind == "num":
            return ("lit", int(val))
        if kind == "var":
            name, *fields = val.split(".")
            return ("var", name, fields)
        if kind == "field":
            return ("field", [f for f in val.split(".") if f])
        if kind == "ident":
            if val in ("true", "false"):
                return ("lit", val == "true")
            if val == "nil":
                return ("lit", None)
            if val not in FUNCTIONS:
                raise TemplateError(f"{where}: function {val!r} is outside the template subset "
                                    f"this check renders ({', '.join(sorted(FUNCTIONS))})")
            return ("func", val)
        if val == "(":
            start = pos
            depth = 1
            while pos < len(toks) and depth:
                depth += {"(": 1, ")": -1}.get(toks[pos][1], 0) if toks[pos][0] == "op" else 0
                pos += 1
            if depth:
                raise TemplateError(f"{where}: unbalanced parenthesis")
            return ("pipe", parse_pipeline(toks[start:pos - 1], where))
        raise TemplateError(f"{where}: unexpected {val!r}")

    cmds, cur = [], []
    while pos < len(toks):
        if toks[pos] == ("op", "|"):
            pos += 1
            if not cur:
                raise TemplateError(f"{where}: empty command before '|'")
            cmds.append(cur)
            cur = []
        else:
            cur.append(operand())
    if not cur:
        raise TemplateError(f"{where}: empty pipeline")
    cmds.append(cur)
    for cmd in cmds:
        if cmd[0][0] != "func" and len(cmd) > 1:
            raise TemplateError(f"{where}: {len(cmd) - 1} argument(s) after a value, not a function")
    return cmds


def parse_decl(body, where):
    """'$a, $b := pipe' | '$a := pipe' | 'pipe' -> (names, pipeline)."""
    toks = tokenize(body, where)
    if ("op", ":=") in toks:
        i = toks.index(("op", ":="))
        names = [v for k, v in toks[:i] if k == "var"]
        if not names or len(names) != len([t for t in toks[:i] if t != ("op", ",")]):
            raise TemplateError(f"{where}: only variables may be declared with :=")
        return names, parse_pipeline(toks[i + 1:], where)
    if ("op", "=") in toks:
        raise TemplateError(f"{where}: assignment with '=' is outside the checked subset")
    return [], parse_pipeline(toks, where)


# Refused at parse time, so that one in a branch no values file takes fails all the same.
FUNCTIONS = {"include", "required", "printf", "eq", "index", "default", "quote", "toYaml",
             "nindent", "indent", "b64enc", "sha256sum", "randAlphaNum", "randBytes", "lookup",
             "not", "and", "or", "until", "int"}
REFUSED = {"with", "template", "block", "break", "continue", "tpl"}


def parse(text, fname, defines):
    """Template text -> node list; define blocks go into `defines` (name -> (nodes, fname))."""
    items = lex(text, fname)
    stack = [("root", None, [])]  # (kind, node, body list being filled)
    for kind, val, line in items:
        body = stack[-1][2]
        if kind == "text":
            if val:
                body.append(("text", val))
            continue
        where = f"{fname}:{line}"
        if val.startswith("/*"):
            if not val.endswith("*/"):
                raise TemplateError(f"{where}: comment without its closing */")
            continue
        word = val.split(None, 1)[0] if val.split() else ""
        rest = val[len(word):].strip()
        if word in REFUSED:
            raise TemplateError(f"{where}: '{word}' is outside the template subset this check "
                                "renders; use if/range/include, or extend check_charts.py")
        if word == "if":
            node = ("if", [(parse_pipeline(tokenize(rest, where), where), [])], [], where)
            body.append(node)
            stack.append(("if", node, node[1][0][1]))
        elif word == "range":
            names, pipe = parse_decl(rest, where)
            if len(names) > 2:
                raise TemplateError(f"{where}: range declares at most two variables")
            node = ("range", names, pipe, [], [], where)
            body.append(node)
            stack.append(("range", node, node[3]))
        elif word == "else":
            top_kind, node, _ = stack[-1]
            if top_kind not in ("if", "range", "if-else", "range-else"):
                raise TemplateError(f"{where}: else outside if/range")
            if rest.startswith("if ") and top_kind == "if":
                node[1].append((parse_pipeline(tokenize(rest[3:], where), where), []))
                stack[-1] = ("if", node, node[1][-1][1])
            elif rest:
                raise TemplateError(f"{where}: 'else {rest}' is outside the checked subset")
            elif top_kind in ("if-else", "range-else"):
                raise TemplateError(f"{where}: second else")
            else:
                stack[-1] = (top_kind + "-else", node, node[2] if top_kind == "if" else node[4])
        elif word == "end":
            if len(stack) == 1:
                raise TemplateError(f"{where}: end without if/range/define")
            top_kind, node, _ = stack.pop()
            if top_kind == "define":
                if node[0] in defines:
                    raise TemplateError(f"{where}: template {node[0]!r} defined twice")
                defines[node[0]] = (node[1], fname)
        elif word == "define":
            if len(stack) != 1:
                raise TemplateError(f"{where}: define inside another block")
            toks = tokenize(rest, where)
            if len(toks) != 1 or toks[0][0] != "str":
                raise TemplateError(f"{where}: define takes one quoted name")
            node = (json.loads(toks[0][1]), [])
            stack.append(("define", node, node[1]))
        else:
            names, pipe = parse_decl(val, where)
            if len(names) > 1:
                raise TemplateError(f"{where}: declare one variable at a time")
            body.append(("action", names, pipe, where))
    if len(stack) != 1:
        raise TemplateError(f"{fname}: '{stack[-1][0].split('-')[0]}' without its end")
    return stack[0][2]


# ---------------------------------------------------------------- evaluation

def truthy(v):
    """Go's notion: false, 0, nil and empty strings, lists and maps are false."""
    if isinstance(v, (bool, int, float)):
        return bool(v)
    return v is not None and v not in ("", [], {})


def strval(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def printable(v, where):
    if isinstance(v, (dict, list)):
        raise TemplateError(f"{where}: prints a {type(v).__name__} as Go would (map[...]/[...]); "
                            "use toYaml")
    return strval(v)


def go_printf(where, fmt, *args):
    args = list(args)

    def conv(m):
        verb = m.group(0)
        if verb == "%%":
            return "%"
        if verb not in ("%s", "%d", "%v"):
            raise TemplateError(f"{where}: printf verb {verb} is outside the checked subset")
        if not args:
            raise TemplateError(f"{where}: printf {fmt!r} has more verbs than arguments")
        a = args.pop(0)
        if verb == "%d" and (not isinstance(a, int) or isinstance(a, bool)):
            raise TemplateError(f"{where}: printf %d of {a!r}")
        return printable(a, where)

    out = re.sub(r"%.", conv, fmt)
    if args:
        raise TemplateError(f"{where}: printf {fmt!r} has {len(args)} argument(s) too many")
    return out


def to_yaml(v):
    text = yaml.safe_dump(v, default_flow_style=False, sort_keys=True, allow_unicode=True)
    if text.endswith("\n...\n"):
        text = text[:-5]
    return text.rstrip("\n")


def indent(n, s):
    pad = " " * n
    return pad + strval(s).replace("\n", "\n" + pad)


def go_eq(where, a, *bs):
    for b in bs:
        if type(a) is not type(b) and not (a is None or b is None):
            raise TemplateError(f"{where}: eq of {type(a).__name__} and {type(b).__name__}")
    return any(a == b for b in bs)


def go_index(where, coll, *keys):
    for k in keys:
        if isinstance(coll, dict):
            coll = coll.get(k)
        elif isinstance(coll, list) and isinstance(k, int) and 0 <= k < len(coll):
            coll = coll[k]
        else:
            raise TemplateError(f"{where}: index {k!r} of {strval(coll)[:40]!r}")
    return coll


def required(where, msg, v):
    if v is None or v == "":
        raise TemplateError(f"{where}: required value missing: {msg}")
    return v


class Renderer:
    """Renders parsed templates with Helm's semantics for the subset parse() accepts."""

    def __init__(self, defines, seed=0):
        self.defines = defines
        self.rand = random.Random(seed)  # generated secrets: reproducible renders
        self.funcs = {
            "include": self.include, "required": required, "printf": go_printf,
            "eq": go_eq, "index": go_index,
            "default": lambda w, d, v=None: v if truthy(v) else d,
            "quote": lambda w, *a: " ".join(json.dumps(strval(x), ensure_ascii=False)
                                            for x in a if x is not None),
            "toYaml": lambda w, v: to_yaml(v),
            "nindent": lambda w, n, s: "\n" + indent(n, s),
            "indent": lambda w, n, s: indent(n, s),
            "b64enc": lambda w, s: base64.b64encode(strval(s).encode()).decode(),
            "sha256sum": lambda w, s: hashlib.sha256(strval(s).encode()).hexdigest(),
            "randAlphaNum": lambda w, n: "".join(
                self.rand.choice(string.ascii_letters + string.digits) for _ in range(n)),
            "randBytes": lambda w, n: base64.b64encode(
                bytes(self.rand.randrange(256) for _ in range(n))).decode(),
            "lookup": lambda w, *a: {},  # as `helm template`: no cluster to look into
            "not": lambda w, v: not truthy(v),
            "and": lambda w, *a: next((x for x in a if not truthy(x)), a[-1]),
            "or": lambda w, *a: next((x for x in a if truthy(x)), a[-1]),
            "until": lambda w, n: list(range(n)),
            "int": lambda w, v: int(v),
        }
        assert set(self.funcs) == FUNCTIONS
        self.depth = 0

    def include(self, where, name, dot):
        if name not in self.defines:
            raise TemplateError(f"{where}: include of undefined template {name!r}")
        self.depth += 1
        if self.depth > 50:
            raise TemplateError(f"{where}: include nested too deep (recursion?)")
        try:
            return self.render(self.defines[name][0], dot, {"$": dot})
        finally:
            self.depth -= 1

    def render(self, nodes, dot, scope):
        out = []
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "action":
                _, names, pipe, where = node
                v = self.pipeline(pipe, dot, scope, where)
                if names:
                    scope[names[0]] = v
                else:
                    out.append(printable(v, where))
            elif kind == "if":
                _, branches, else_body, where = node
                for pipe, body in branches:
                    if truthy(self.pipeline(pipe, dot, scope, where)):
                        out.append(self.render(body, dot, dict(scope)))
                        break
                else:
                    out.append(self.render(else_body, dot, dict(scope)))
            elif kind == "range":
                _, names, pipe, body, else_body, where = node
                coll = self.pipeline(pipe, dot, scope, where)
                if isinstance(coll, dict):
                    items = sorted(coll.items())
                elif isinstance(coll, list):
                    items = list(enumerate(coll))
                elif coll is None:
                    items = []
                else:
                    raise TemplateError(f"{where}: range over {type(coll).__name__}")
                for k, v in items:
                    inner = dict(scope)
                    if len(names) == 1:
                        inner[names[0]] = v
                    elif len(names) == 2:
                        inner[names[0]], inner[names[1]] = k, v
                    out.append(self.render(body, v, inner))
                if not items:
                    out.append(self.render(else_body, dot, dict(scope)))
        return "".join(out)

    def pipeline(self, cmds, dot, scope, where):
        val, piped = None, False
        for cmd in cmds:
            head = cmd[0]
            if head[0] == "func":
                args = [self.operand(a, dot, scope, where) for a in cmd[1:]]
                if piped:
                    args.append(val)
                try:
                    val = self.funcs[head[1]](where, *args)
                except TypeError:
                    raise TemplateError(f"{where}: wrong arguments to {head[1]}") from None
            elif piped:
                raise TemplateError(f"{where}: a value cannot take a piped argument")
            else:
                val = self.operand(head, dot, scope, where)
            piped = True
        return val

    def operand(self, op, dot, scope, where):
        if op[0] == "lit":
            return op[1]
        if op[0] == "pipe":
            return self.pipeline(op[1], dot, scope, where)
        if op[0] == "func":
            return self.pipeline([[op]], dot, scope, where)
        if op[0] == "var":
            if op[1] not in scope:
                raise TemplateError(f"{where}: undefined variable {op[1]}")
            return self.fields(scope[op[1]], op[2], op[1], where)
        return self.fields(dot, op[1], "", where)

    @staticmethod
    def fields(v, names, base, where):
        path = base
        for n in names:
            if v is None:
                raise TemplateError(f"{where}: nil pointer evaluating {path or '.'}.{n}")
            if not isinstance(v, dict):
                raise TemplateError(f"{where}: can't evaluate field {n} in {path} (not a map)")
            v, path = v.get(n), f"{path}.{n}"
        return v
