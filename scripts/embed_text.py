#!/usr/bin/env python3
"""Write a text file as a C string constant, for files the binary embeds
(the browser demo's page): embed_text.py INPUT OUTPUT NAME.

The output defines `static const char NAME[]`; its size less one is the
text's length. Bytes outside printable ASCII become octal escapes (always
three digits, so a following digit cannot extend them)."""
import sys


def c_literal(line: bytes) -> str:
    out = []
    for b in line:
        if b == 0x0A:
            out.append('\\n')
        elif b == 0x09:
            out.append('\\t')
        elif b in (0x22, 0x5C):  # " and backslash
            out.append('\\' + chr(b))
        elif b == 0x3F:  # '?': no trigraphs, whatever the compiler's mode
            out.append('\\?')
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append('\\%03o' % b)
    return '"' + ''.join(out) + '"'


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    src, dst, name = sys.argv[1:]
    with open(src, 'rb') as f:
        data = f.read()
    lines = [c_literal(line) for line in data.splitlines(keepends=True)] or ['""']
    with open(dst, 'w', encoding='ascii') as f:
        f.write('/* Generated from %s by embed_text.py: edit that file. */\n' % src.split('/')[-1])
        f.write('static const char %s[] =\n\t' % name)
        f.write('\n\t'.join(lines))
        f.write(';\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
