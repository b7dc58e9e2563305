#!/usr/bin/env python3
"""Prints a deb822 sources stanza that adds Debian's non-free component for
every Debian bookworm source this machine already has configured (the same
URIs, suites and keyring), so a mirror or proxy set up on the machine keeps
working.  Reads /etc/apt/sources.list, sources.list.d/*.list and *.sources;
prints nothing when there is no such source."""
import glob
import os
import sys

ROOT = os.environ.get("APT_ROOT", "/etc/apt")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def deb822_stanzas(text):
    stanza, key = {}, None
    for line in text.splitlines() + [""]:
        if not line.strip():
            if stanza:
                yield stanza
            stanza, key = {}, None
        elif line.startswith("#"):
            continue
        elif line[0] in " \t" and key:
            stanza[key] += " " + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            stanza[key] = value.strip()


def one_line_sources(text):
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 4 or words[0] != "deb":
            continue
        opts = {}
        if words[1].startswith("["):
            while not words[1].endswith("]"):
                words[1] += " " + words.pop(2)
            for opt in words.pop(1)[1:-1].split():
                k, _, v = opt.partition("=")
                opts[k.lower()] = v
        yield {"types": "deb", "uris": words[1], "suites": words[2],
               "components": " ".join(words[3:]),
               "signed-by": opts.get("signed-by", "")}


def sources():
    files = [os.path.join(ROOT, "sources.list")]
    files += sorted(glob.glob(os.path.join(ROOT, "sources.list.d", "*.list")))
    for f in files:
        if os.path.isfile(f):
            yield from one_line_sources(open(f).read())
    for f in sorted(glob.glob(os.path.join(ROOT, "sources.list.d", "*.sources"))):
        if os.path.basename(f).startswith("tapvm-"):
            continue
        yield from deb822_stanzas(open(f).read())


def main():
    seen = set()
    out = []
    for s in sources():
        if "deb" not in s.get("types", "").split():
            continue
        if s.get("enabled", "yes").lower() == "no":
            continue
        suites = [x for x in s.get("suites", "").split()
                  if x in ("bookworm", "bookworm-updates")]
        comps = s.get("components", "").split()
        if not suites or "main" not in comps:
            continue   # not a Debian bookworm archive source
        for uri in s.get("uris", "").split():
            key = (uri, tuple(suites))
            if key in seen:
                continue
            seen.add(key)
            out.append("Types: deb\nURIs: %s\nSuites: %s\nComponents: non-free\n"
                       "Signed-By: %s\n" % (uri, " ".join(suites),
                                            s.get("signed-by") or KEYRING))
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
