#!/usr/bin/python3
"""Checks the built man pages.

Each page must render at 80 columns with no warning from man(1) and groff
(all of groff's warnings, "can't break line" included) and no line wider. Optionally:
  --options-of PROGRAM  every long option PROGRAM --help prints is in the page;
  --readme README       every key of README's configuration tables is in the page;
  --parser SOURCE       every key the config parser SOURCE accepts is in the page.
These apply to the --page before them.
Usage: check_man.py --page PAGE [--options-of PROGRAM] [--readme README] [--parser SOURCE]... ...
"""
import os
import re
import subprocess
import sys

ENV = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80")


def render(page, extra_env=None):
    """The page as man(1) shows it: (exit status, text, stderr)."""
    env = dict(ENV, **(extra_env or {}))
    r = subprocess.run(["man", "--warnings=w", "-l", page], env=env, capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def plain(text):
    """Rendered text without overstrikes, with groff's dashes as ASCII."""
    text = re.sub(r".\x08", "", text)
    return re.sub("[\u2010\u2011\u2012\u2212]", "-", text)


def help_options(program):
    r = subprocess.run([program, "--help"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        return None, f"{program} --help exited {r.returncode}"
    # The options the text defines (a line that starts with one) or shows in a
    # usage line; prose such as "--opt VALUE" names none.
    lines = [l for l in r.stdout.splitlines()
             if re.match(r"\s*(usage:|-[a-zA-Z],\s|--[a-z])", l) or l.startswith("       ")]
    opts = sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", "\n".join(lines))))
    return opts, None if opts else f"{program} --help prints no long option"


def readme_keys(readme):
    """Keys of the '| key |' tables in README's configuration reference:
    (key, exact). A key of the first table is looked for as written
    (socket.path, pools.NAME); a key of a later table (a pool's) or one the
    table abbreviates ("…deny_private") as the end of a dotted key."""
    text = open(readme, encoding="utf-8").read()
    m = re.search(r"^## Configuration reference\n(.*?)(?=^## )", text, re.M | re.S)
    if not m:
        return None
    keys, table, in_table, previous = [], 0, False, ""
    for line in m.group(1).splitlines():
        if line.startswith("|") and not previous.startswith("|"):  # a table's header
            in_table = re.match(r"\|\s*key\s*\|", line) is not None
            table += in_table
        elif not line.startswith("|"):
            in_table = False
        previous = line
        cell = re.match(r"\|\s*`([^`]+)`\s*\|", line)
        if cell and in_table:
            key = cell.group(1)
            exact = table == 1 and not key.startswith("…")
            keys.append((key.lstrip("…"), exact))
    return keys


def parser_keys(source):
    """Keys a config parser accepts: its {"key", handler} entries."""
    text = open(source, encoding="utf-8").read()
    keys = re.findall(r'\{"([a-z_]+)",\s*(?:\[&\]|count\()', text)
    keys += re.findall(r'keys\["([a-z_]+)"\]', text)
    return sorted(set(keys))


def has(text, word, exact):
    if exact:
        return re.search(r"(?<![\w.\[\]-])" + re.escape(word) + r"(?![\w-])", text) is not None
    return re.search(r"\." + re.escape(word) + r"(?![\w-])", text) is not None


def documents_key(text, key):
    """The page names `key` as a key: in a dotted key (either end), quoted
    as JSON, or as a term opening a line ("key (type; ...)")."""
    return (has(text, key, False) or f'"{key}"' in text or
            re.search(r"(?<![\w.\[\]-])" + re.escape(key) + r"[.\[]\w", text) is not None or
            re.search(r"^\s*" + re.escape(key) + r" \(", text, re.M) is not None)


def main(argv):
    pages, i = [], 0
    while i < len(argv):
        flag, value = argv[i], argv[i + 1] if i + 1 < len(argv) else None
        if value is None or flag not in ("--page", "--options-of", "--readme", "--parser"):
            sys.exit(__doc__)
        if flag == "--page":
            pages.append({"page": value, "options-of": [], "readme": [], "parser": []})
        elif not pages:
            sys.exit(__doc__)
        else:
            pages[-1][flag[2:]].append(value)
        i += 2
    if not pages:
        sys.exit(__doc__)

    problems = []
    for p in pages:
        checked = []
        page = p["page"]
        name = os.path.basename(page)
        rc, _, err = render(page)
        if rc != 0 or err:
            problems.append(f"{name}: man --warnings=w exited {rc}:\n{err.rstrip()}")
        # Text checks on an unhyphenated rendering: groff may otherwise
        # split an option or a key across lines.
        rc, out, err = render(page, {"MANROFFOPT": "-rHY=0"})
        text = plain(out)
        if rc != 0 or not text.strip():
            problems.append(f"{name}: renders no text")
            continue
        # groff warns of nothing in literal blocks: a line there may overflow.
        for n, line in enumerate(text.splitlines(), 1):
            if len(line) > 80:
                problems.append(f"{name}: line {n} of the rendering is {len(line)} columns wide: {line.strip()}")
        for program in p["options-of"]:
            opts, why = help_options(program)
            if why:
                problems.append(f"{name}: {why}")
            checked.append(f"{len(opts or [])} options of {os.path.basename(program)} --help")
            for opt in opts or []:
                if not has(text, opt, True):
                    problems.append(f"{name}: {opt} (from {os.path.basename(program)} --help) is not in the page")
        for readme in p["readme"]:
            keys = readme_keys(readme)
            if not keys or len(keys) < 20:
                problems.append(f"{name}: found {len(keys or [])} keys in {readme}'s configuration reference; "
                                "has its '| key |' table moved?")
            checked.append(f"{len(keys or [])} keys of {os.path.basename(readme)}")
            for key, exact in keys or []:
                if not has(text, key, exact):
                    problems.append(f"{name}: {key} (from {os.path.basename(readme)}) is not in the page")
        for source in p["parser"]:
            keys = parser_keys(source)
            if len(keys) < 5:
                problems.append(f"{name}: found {len(keys)} keys in {source}; has the parser's form changed?")
            checked.append(f"{len(keys)} keys parsed in {os.path.basename(source)}")
            for key in keys:
                if not documents_key(text, key):
                    problems.append(f"{name}: key {key} (parsed in {os.path.basename(source)}) is not in the page")
        print(f"{name}: rendered" + "".join(", " + c for c in checked))

    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
