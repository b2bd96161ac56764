# Writes an empty registry hive (base block + one hive bin holding the root key and its
# security cell): hivexregedit --merge needs an existing hive to add keys to.
import struct,sys
hb=bytearray(4096)
hb[0:4]=b'hbin'; struct.pack_into('<II',hb,4,0,4096)
# root nk at 0x20 (cell size 0x60 allocated)
nk=bytearray(0x60); struct.pack_into('<i',nk,0,-0x60)
d=bytearray(b'nk'); d+=struct.pack('<H',0x2c); d+=b'\0'*8
d+=struct.pack('<IIIIIIIIIIIIIIII',0,0xffffffff,0,0,0xffffffff,0xffffffff,0,0xffffffff,0x80,0xffffffff,0,0,0,0,0,0)
d+=struct.pack('<HH',4,0)+b'ROOT'
nk[4:4+len(d)]=d; hb[0x20:0x80]=nk
# sk at 0x80
sd=struct.pack('<BBHIIII',1,0,0x8004,0,0,0,0)
sk=bytearray(b'sk')+struct.pack('<HIIII',0,0x80,0x80,1,len(sd))+sd
cell=bytearray(struct.pack('<i',-(len(sk)+4+7&~7)))+sk
cell+=b'\0'*((len(sk)+4+7&~7)-len(cell))
hb[0x80:0x80+len(cell)]=cell
free=0x80+len(cell); struct.pack_into('<i',hb,free,4096-free)
h=bytearray(4096); h[0:4]=b'regf'; struct.pack_into('<IIQIIIIIII',h,4,1,1,0,1,5,0,1,0x20,4096,1)
cs=0
for i in range(127): cs^=struct.unpack_from('<I',h,i*4)[0]
struct.pack_into('<I',h,0x1fc,cs)
open(sys.argv[1],'wb').write(bytes(h+hb))
