#!/usr/bin/env python3
"""Flattens virt-inspector XML (or diskfab inspect --xml) into JSON for field-by-field comparison:
a list with one object per <operatingsystem>: every scalar child element by name; mountpoints as
[dev, mountpoint] pairs; filesystems as {dev, type, label, uuid}; drive_mappings as [name, dev];
applications as a list of {child: text} (absent when the document has no <applications>)."""
import json
import sys
import xml.etree.ElementTree as E

LISTS = {"mountpoints", "filesystems", "drive_mappings", "applications"}


def os_entry(o):
    out = {}
    for c in o:
        if c.tag not in LISTS:
            out[c.tag] = c.text or ""
    mp = o.find("mountpoints")
    if mp is not None:
        out["mountpoints"] = [[m.get("dev"), m.text or ""] for m in mp]
    fs = o.find("filesystems")
    if fs is not None:
        out["filesystems"] = [
            dict({"dev": f.get("dev")}, **{c.tag: c.text or "" for c in f}) for f in fs
        ]
    dm = o.find("drive_mappings")
    if dm is not None:
        out["drive_mappings"] = [[d.get("name"), d.text or ""] for d in dm]
    apps = o.find("applications")
    if apps is not None:
        out["applications"] = [{c.tag: c.text or "" for c in a} for a in apps]
    return out


root = E.parse(sys.argv[1]).getroot()
print(json.dumps([os_entry(o) for o in root.findall("operatingsystem")]))
