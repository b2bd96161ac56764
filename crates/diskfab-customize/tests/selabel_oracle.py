#!/usr/bin/env python3
"""Oracle for the SELinux lookup tests: libselinux's own selabel_lookup_raw (through ctypes).

argv[1]: a file_contexts path (its .homedirs/.local/.subs/.subs_dist siblings are read by
libselinux itself). stdin: lines "MODE<TAB>PATH" (MODE octal S_IFMT bits, 0 = any).
stdout: one line per input: the raw context, "<<nolabel>>" (ENOENT: no match or <<none>>),
or "<<error N>>" for any other errno.
"""
import ctypes
import sys

lib = ctypes.CDLL("libselinux.so.1", use_errno=True)


class Opt(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("value", ctypes.c_char_p)]


SELABEL_CTX_FILE = 0
SELABEL_OPT_PATH = 3
lib.selabel_open.restype = ctypes.c_void_p
lib.selabel_open.argtypes = [ctypes.c_uint, ctypes.POINTER(Opt), ctypes.c_uint]
lib.selabel_lookup_raw.restype = ctypes.c_int
lib.selabel_lookup_raw.argtypes = [
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_char_p),
    ctypes.c_char_p,
    ctypes.c_int,
]
opts = (Opt * 1)(Opt(SELABEL_OPT_PATH, sys.argv[1].encode()))
h = lib.selabel_open(SELABEL_CTX_FILE, opts, 1)
if not h:
    sys.exit("selabel_open failed: errno %d" % ctypes.get_errno())
out = sys.stdout.buffer
for line in sys.stdin.buffer:
    line = line.rstrip(b"\n")
    mode, _, key = line.partition(b"\t")
    con = ctypes.c_char_p()
    ctypes.set_errno(0)
    rc = lib.selabel_lookup_raw(h, ctypes.byref(con), key, int(mode, 8))
    if rc == 0:
        out.write(con.value + b"\n")
    elif ctypes.get_errno() == 2:
        out.write(b"<<nolabel>>\n")
    else:
        out.write(b"<<error %d>>\n" % ctypes.get_errno())
