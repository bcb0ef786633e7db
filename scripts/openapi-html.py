#!/usr/bin/env python3
"""Render spool's OpenAPI description (api/openapi.json) as one static HTML page: every
operation by tag with its parameters, bodies and responses, the webhooks spool-api
sends, then every schema. No
scripts, no fonts or files from elsewhere, styles inline: spool-api serves it at
/docs/api under a CSP that allows nothing else. The output depends on the input only
(no dates), so test_openapi can check that the committed page is current.

Usage: scripts/openapi-html.py api/openapi.json api/openapi.html   (make openapi-docs)
"""
import html
import json
import re
import sys

METHODS = ("get", "head", "post", "put", "patch", "delete")

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2430;background:#fff}
header{background:#1d2430;color:#fff;padding:1.2em 2em}
header h1{margin:0;font-size:1.6em}
header a.raw{color:#fff}
main{display:flex;align-items:flex-start}
nav{position:sticky;top:0;max-height:100vh;overflow:auto;width:22em;flex:none;padding:1em;
 border-right:1px solid #dde;font-size:.9em;box-sizing:border-box}
nav ul{list-style:none;padding-left:0;margin:.2em 0 1em}
nav a{color:#1d2430;text-decoration:none;white-space:nowrap}
nav .m{min-width:3.6em;font-size:11px}
article{padding:1em 2em;min-width:0;flex:1;overflow-wrap:break-word}
section.op{border:1px solid #dde;border-radius:6px;padding:.2em 1.2em 1em;margin:1.2em 0}
h2{border-bottom:2px solid #dde;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.1em}
code,pre{font:13px/1.4 ui-monospace,"DejaVu Sans Mono",monospace;background:#f3f4f8;border-radius:3px}
code{padding:0 .25em}
pre{padding:.6em;overflow:auto;white-space:pre-wrap;overflow-wrap:anywhere}
table{border-collapse:collapse;margin:.4em 0 1em;width:100%}
th,td{border:1px solid #dde;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f3f4f8;font-weight:600;white-space:nowrap}
td:first-child{white-space:nowrap}
.m{display:inline-block;min-width:4.2em;text-align:center;border-radius:3px;color:#fff;
 font:bold 12px/1.8 ui-monospace,monospace;margin-right:.4em}
.get{background:#2f7d4f}.head{background:#6b7280}.post{background:#1f5fbf}
.delete{background:#b42318}.put,.patch{background:#9a5b00}
.open{color:#2f7d4f;font-size:.85em}.auth{color:#9a5b00;font-size:.85em}
.req{color:#b42318}
"""


def esc(s):
    return html.escape(str(s), quote=True)


def inline(text):
    """Escape text and turn `code` into <code>."""
    parts = re.split(r"`([^`]*)`", str(text))
    return "".join(f"<code>{esc(p)}</code>" if i % 2 else esc(p) for i, p in enumerate(parts))


def prose(text):
    """The Markdown the description uses: paragraphs, `code` and "- " lists."""
    out = []
    for block in re.split(r"\n\s*\n", (text or "").strip()):
        lines = block.split("\n")
        items = [ln[2:] for ln in lines if ln.startswith("- ")]
        head = [ln for ln in lines if not ln.startswith("- ")]
        if head:
            out.append("<p>" + inline(" ".join(head)) + "</p>")
        if items:
            out.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in items) + "</ul>")
    return "\n".join(out)


def anchor(kind, name):
    return kind + "-" + re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")


class Spec:
    def __init__(self, doc):
        self.doc = doc

    def deref(self, obj):
        """A $ref'd component resolved (parameters, responses, headers)."""
        while isinstance(obj, dict) and "$ref" in obj:
            node = self.doc
            for part in obj["$ref"].lstrip("#/").split("/"):
                node = node[part]
            obj = node
        return obj

    def type_of(self, s):
        """A schema in one line of HTML, with links to named schemas."""
        if not isinstance(s, dict):
            return esc(s)
        if "$ref" in s:
            name = s["$ref"].rsplit("/", 1)[-1]
            return f'<a href="#{anchor("schema", name)}">{esc(name)}</a>'
        if set(s) <= {"required", "description"} and s.get("required"):
            # a part of an allOf that only makes fields required: "Worker with `jobs`"
            return "with " + ", ".join(f"<code>{esc(r)}</code>" for r in s["required"])
        for key, word in (("oneOf", " or "), ("anyOf", " or "), ("allOf", " and ")):
            if key in s:
                parts = [self.type_of(x) for x in s[key]]
                return "".join((" " if p.startswith("with ") else word) + p if i else p
                               for i, p in enumerate(parts))
        t = s.get("type", "any")
        t = " or ".join(t) if isinstance(t, list) else t
        if t == "array":
            t = "array of " + self.type_of(s.get("items", {}))
        else:
            t = esc(t)
        facts = []
        if "const" in s:
            facts.append("<code>" + esc(json.dumps(s["const"])) + "</code>")
        if "enum" in s:
            facts.append(" | ".join(f"<code>{esc(v)}</code>" for v in s["enum"]))
        for key, label in (("format", "format"), ("pattern", "pattern"),
                           ("minimum", "min"), ("exclusiveMinimum", "above"),
                           ("maximum", "max"), ("minLength", "min length"),
                           ("maxLength", "max length"), ("minItems", "min items"),
                           ("maxItems", "max items"), ("default", "default"),
                           ("contentMediaType", "content")):
            if key in s:
                v = s[key] if isinstance(s[key], str) else json.dumps(s[key])
                facts.append(f"{label} <code>{esc(v)}</code>")
        if "contentSchema" in s:
            facts.append("each holding " + self.type_of(s["contentSchema"]))
        return t + (" (" + "; ".join(facts) + ")" if facts else "")

    def properties(self, s):
        """A table of an object schema's properties, or its type in one line."""
        if not isinstance(s, dict) or "properties" not in s:
            return f"<p>{self.type_of(s)}</p>"
        req = set(s.get("required", []))
        rows = []
        for name, p in s["properties"].items():
            mark = ' <span class="req">required</span>' if name in req else ""
            rows.append(f"<tr><td><code>{esc(name)}</code>{mark}</td><td>{self.type_of(p)}</td>"
                        f"<td>{inline(p.get('description', ''))}</td></tr>")
        extra = ""
        if s.get("additionalProperties") is False:
            extra = "<p>No other fields.</p>"
        return ("<table><tr><th>field</th><th>type</th><th>meaning</th></tr>" + "".join(rows) +
                "</table>" + extra)

    def parameters(self, params):
        if not params:
            return ""
        rows = []
        for p in params:
            p = self.deref(p)
            schema = p.get("schema")
            if schema is None:  # a parameter with content: its one media type's schema
                mt, media = next(iter(p.get("content", {}).items()))
                schema = dict(media.get("schema", {}), contentMediaType=mt)
            mark = ' <span class="req">required</span>' if p.get("required") else ""
            rows.append(f"<tr><td><code>{esc(p['name'])}</code>{mark}</td><td>{esc(p['in'])}</td>"
                        f"<td>{self.type_of(schema)}</td><td>{inline(p.get('description', ''))}</td></tr>")
        return ("<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>type</th>"
                "<th>meaning</th></tr>" + "".join(rows) + "</table>")

    def content(self, content):
        out = []
        for mt, media in content.items():
            out.append(f"<p><code>{esc(mt)}</code>: {self.type_of(media.get('schema', {}))}</p>")
            example = media.get("example")
            if example is not None:
                text = example if isinstance(example, str) else json.dumps(example, indent=2,
                                                                          ensure_ascii=False)
                out.append(f"<pre>{esc(text)}</pre>")
        return "".join(out)

    def responses(self, responses):
        rows = []
        for code, r in responses.items():
            r = self.deref(r)
            headers = ", ".join(f"<code>{esc(h)}</code>" for h in r.get("headers", {}))
            body = self.content(r.get("content", {}))
            rows.append(f"<tr><td><b>{esc(code)}</b></td><td>{inline(r.get('description', ''))}"
                        + (f"<br>headers: {headers}" if headers else "") +
                        f"</td><td>{body}</td></tr>")
        return ("<h4>Responses</h4><table><tr><th>status</th><th>meaning</th><th>body</th></tr>" +
                "".join(rows) + "</table>")

    def operations(self):
        """[(tag, method, path, operation, path item)] in the document's order."""
        ops = []
        for path, item in self.doc["paths"].items():
            for m in METHODS:
                if m in item:
                    op = item[m]
                    ops.append(((op.get("tags") or ["other"])[0], m, path, op, item))
        return ops

    def operation(self, m, path, op, item, sent=False):
        """One operation; sent: a webhook, which spool-api sends rather than serves."""
        sec = op.get("security", self.doc.get("security", []))
        open_ = not sec or sec == [{}]
        who = ('<span class="open">no token needed</span>' if open_ else
               '<span class="auth">bearer token when SPOOL_API_TOKENS is set</span>')
        if sent:
            who = '<span class="auth">sent by spool-api</span>'
        out = [f'<section class="op" id="{anchor("op", op["operationId"])}">',
               f'<h3><span class="m {m}">{m.upper()}</span><code>{esc(path)}</code></h3>',
               f"<p><b>{inline(op.get('summary', ''))}</b> · {who}</p>",
               prose(op.get("description", "")),
               self.parameters(item.get("parameters", []) + op.get("parameters", []))]
        body = op.get("requestBody")
        if body:
            body = self.deref(body)
            out.append("<h4>Request body" + (" (required)" if body.get("required") else "") +
                       "</h4>" + self.content(body.get("content", {})))
        out.append(self.responses(op.get("responses", {})))
        out.append("</section>")
        return "\n".join(x for x in out if x)

    def render(self):
        info = self.doc["info"]
        tags = [t["name"] for t in self.doc.get("tags", [])]
        ops = self.operations()
        tags += sorted({t for t, *_ in ops} - set(tags))
        nav, body = [], []
        for tag in tags:
            mine = [o for o in ops if o[0] == tag]
            if not mine:
                continue
            desc = next((t.get("description", "") for t in self.doc.get("tags", [])
                         if t["name"] == tag), "")
            nav.append(f'<b>{esc(tag)}</b><ul>' + "".join(
                f'<li><a href="#{anchor("op", op["operationId"])}"><span class="m {m}">'
                f'{m.upper()}</span>{esc(path)}</a></li>' for _, m, path, op, _ in mine) + "</ul>")
            body.append(f'<h2 id="{anchor("tag", tag)}">{esc(tag)}</h2>{prose(desc)}')
            body.extend(self.operation(m, path, op, item) for _, m, path, op, item in mine)
        hooks = [(name, m, item[m], item) for name, item in self.doc.get("webhooks", {}).items()
                 for m in METHODS if m in item]
        if hooks:
            nav.append("<b>webhooks</b><ul>" + "".join(
                f'<li><a href="#{anchor("op", op["operationId"])}"><span class="m {m}">'
                f'{m.upper()}</span>{esc(name)}</a></li>' for name, m, op, _ in hooks) + "</ul>")
            body.append('<h2 id="webhooks">webhooks</h2><p>Requests spool-api sends.</p>')
            body.extend(self.operation(m, name, op, item, sent=True) for name, m, op, item in hooks)
        schemas = self.doc.get("components", {}).get("schemas", {})
        nav.append("<b>schemas</b><ul>" + "".join(
            f'<li><a href="#{anchor("schema", n)}">{esc(n)}</a></li>' for n in schemas) + "</ul>")
        body.append('<h2 id="schemas">Schemas</h2>')
        for name, s in schemas.items():
            body.append(f'<h3 id="{anchor("schema", name)}">{esc(name)}</h3>'
                        + prose(s.get("description", "")) + self.properties(s))
        servers = ", ".join(f"<code>{esc(s['url'])}</code>" for s in self.doc.get("servers", []))
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(info['title'])} {esc(info['version'])}</title>
<style>{CSS}</style>
</head>
<body>
<header><h1>{esc(info['title'])} <small>{esc(info['version'])}</small></h1>
<div>{inline(info.get('summary', ''))} OpenAPI {esc(self.doc['openapi'])}:
<a class="raw" href="/openapi.json">/openapi.json</a></div></header>
<main>
<nav>{"".join(nav)}</nav>
<article>
{prose(info.get('description', ''))}
<p>Server: {servers}</p>
{chr(10).join(body)}
</article>
</main>
</body>
</html>
"""


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        doc = json.load(f)
    page = Spec(doc).render()
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write(page)


if __name__ == "__main__":
    main()
