# Writes a new-format (HvLE) registry transaction log, the way Windows 8.1+ does, for tests:
#   hive_log.py BASE CHANGED OUT_HIVE OUT_LOG [--bad-hash] [--old]
# BASE and CHANGED are hives from hivexregedit (before / after a change). OUT_LOG gets a
# 512-byte partial base block (file type 6) and one log entry carrying every 4 KiB page of
# CHANGED's hive bins that differs from BASE; OUT_HIVE is BASE marked dirty (primary sequence
# number = secondary + 1), as a hive whose changes are only in its log.
# --bad-hash corrupts the entry's Hash-1; --old gives the entry a sequence number older than
# the hive's. Format: msuhanov's "Windows registry file format specification".
import struct, sys

SEED = 0x82EF4D887A4E55C5

def marvin32(d, seed):
    lo, hi = seed & 0xFFFFFFFF, seed >> 32
    M = 0xFFFFFFFF
    rol = lambda x, n: ((x << n) | (x >> (32 - n))) & M
    def mix(lo, hi):
        hi ^= lo; lo = rol(lo, 20); lo = (lo + hi) & M; hi = rol(hi, 9)
        hi ^= lo; lo = rol(lo, 27); lo = (lo + hi) & M; hi = rol(hi, 19)
        return lo, hi
    n = len(d) // 4 * 4
    for i in range(0, n, 4):
        lo = (lo + struct.unpack_from('<I', d, i)[0]) & M
        lo, hi = mix(lo, hi)
    rest = d[n:]
    last = 0x80 << (8 * len(rest))
    for i, b in enumerate(rest):
        last |= b << (8 * i)
    lo = (lo + last) & M
    lo, hi = mix(lo, hi)
    lo, hi = mix(lo, hi)
    return (hi << 32) | lo

# Self-check against the .NET runtime's Marvin test vectors.
assert marvin32(b'', 0x004FB61A001BDBCC) == 0x30ED35C100CD3C7D
assert marvin32(b'\x37\xf4\x95', 0x004FB61A001BDBCC) == 0xF0B07C789B8CF7E8

def checksum(b):
    x = 0
    for i in range(127):
        x ^= struct.unpack_from('<I', b, i * 4)[0]
    return {0: 1, 0xFFFFFFFF: 0xFFFFFFFE}.get(x, x)

base = bytearray(open(sys.argv[1], 'rb').read())
new = bytearray(open(sys.argv[2], 'rb').read())
bad_hash, old = '--bad-hash' in sys.argv, '--old' in sys.argv
seq = struct.unpack_from('<I', base, 8)[0]
bins = struct.unpack_from('<I', new, 40)[0]
old_bins = base[4096:].ljust(bins, b'\0')
pages = [(o, new[4096 + o:4096 + o + 4096]) for o in range(0, bins, 4096)
         if new[4096 + o:4096 + o + 4096] != old_bins[o:o + 4096]]
assert pages, 'the changed hive does not differ'
body = b''.join(struct.pack('<II', o, len(p)) for o, p in pages) + b''.join(bytes(p) for o, p in pages)
size = (40 + len(body) + 511) // 512 * 512
entry = bytearray(size)
struct.pack_into('<4sIIIII', entry, 0, b'HvLE', size, 0, seq - 1 if old else seq, bins, len(pages))
entry[40:40 + len(body)] = body
struct.pack_into('<Q', entry, 24, marvin32(bytes(entry[40:]), SEED) ^ (1 if bad_hash else 0))
struct.pack_into('<Q', entry, 32, marvin32(bytes(entry[:32]), SEED))
head = bytearray(new[:512])
struct.pack_into('<III', head, 4, seq, seq, 0)  # sequence numbers (timestamp low word kept below)
head[12:20] = new[12:20]
struct.pack_into('<I', head, 28, 6)  # file type: transaction log, new format
struct.pack_into('<I', head, 508, checksum(head))
open(sys.argv[4], 'wb').write(bytes(head + entry))
# Zero-padded to CHANGED's length, like a preallocated hive file: regipy (the test's oracle)
# cannot grow a hive while applying a log.
base = base.ljust(len(new), b'\0')
struct.pack_into('<I', base, 4, seq + 1)
struct.pack_into('<I', base, 508, checksum(base))
open(sys.argv[3], 'wb').write(bytes(base))
