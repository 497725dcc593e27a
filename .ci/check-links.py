#!/usr/bin/env python3
"""Fails when a relative link, image or anchor in the docs does not resolve.

Reads README.md, experiments/README.md and every page under docs/src/ (the mdBook): each
link or image that is not a URL must name a file or folder that exists, relative to the page,
and each `#anchor` must be the slug of a heading of the page it points into, as GitHub and
mdBook make them (lower case, punctuation dropped, spaces to hyphens, repeats numbered). Also
checks that docs/src/SUMMARY.md lists every page, since mdBook renders only the pages it
lists. Code blocks and code spans are not read. Python's standard library only.

    .ci/check-links.py
"""
import os
import re
import sys
import unicodedata

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BOOK = os.path.join(ROOT, "docs", "src")


def pages():
    found = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "experiments", "README.md")]
    for folder, _, files in os.walk(BOOK):
        found += [os.path.join(folder, f) for f in sorted(files) if f.endswith(".md")]
    return found


def prose(text):
    """The text without fenced code blocks and code spans (which hold no links)."""
    text = re.sub(r"(?ms)^[ \t]*(```|~~~).*?^[ \t]*\1[^\n]*$", "", text)
    return re.sub(r"(`+)(?:(?!\1).)+?\1", "`code`", text, flags=re.S)


def slug(heading):
    """GitHub's and mdBook's anchor for a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    kept = []
    for ch in text:
        if ch in "-_" or unicodedata.category(ch)[0] in "LN":
            kept.append(ch)
        elif ch.isspace():
            kept.append("-")
    return "".join(kept)


def anchors(path, cache={}):
    if path not in cache:
        with open(path, encoding="utf-8") as f:
            text = re.sub(r"(?ms)^[ \t]*(```|~~~).*?^[ \t]*\1[^\n]*$", "", f.read())
        seen = {}
        found = set()
        for heading in re.findall(r"(?m)^#{1,6}[ \t]+(.+?)[ \t#]*$", text):
            base = slug(heading)
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
        found |= set(re.findall(r'(?i)<a\s+(?:name|id)="([^"]+)"', text))
        cache[path] = found
    return cache[path]


def targets(text):
    """Every link and image target of a page's prose."""
    text = prose(text)
    for match in re.finditer(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)", text):
        yield match.group(1)
    for match in re.finditer(r"(?m)^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", text):
        yield match.group(1)
    for match in re.finditer(r"""(?i)<(?:img|a)\s[^>]*?(?:src|href)="([^"]+)\"""", text):
        yield match.group(1)


def main():
    problems = []
    checked = 0
    for page in pages():
        with open(page, encoding="utf-8") as f:
            text = f.read()
        where = os.path.relpath(page, ROOT)
        for target in targets(text):
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):
                continue  # a URL: not checked offline
            checked += 1
            path, _, anchor = target.partition("#")
            resolved = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
            if not os.path.exists(resolved):
                problems.append(f"{where}: {target}: no such file")
                continue
            if anchor:
                if not resolved.endswith(".md"):
                    problems.append(f"{where}: {target}: an anchor into a file that is not a page")
                elif anchor not in anchors(resolved):
                    problems.append(f"{where}: {target}: no heading with that anchor")

    # mdBook renders the pages SUMMARY.md lists, and no others.
    with open(os.path.join(BOOK, "SUMMARY.md"), encoding="utf-8") as f:
        listed = {os.path.normpath(os.path.join(BOOK, t.partition("#")[0])) for t in targets(f.read())}
    for page in pages():
        if page.startswith(BOOK + os.sep) and page not in listed and not page.endswith("SUMMARY.md"):
            problems.append(f"{os.path.relpath(page, ROOT)}: not listed in docs/src/SUMMARY.md")

    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"check-links: {checked} relative links in {len(pages())} pages, {len(problems)} broken")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
