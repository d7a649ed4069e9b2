#!/usr/bin/env python3
"""Regenerates the generated seeds in tests/fuzz/seeds/ (deep nesting, bad bytes, CSARs).

The hand-written YAML seeds (tosca13_min.yaml, tosca20_min.yaml, alias_bomb.yaml,
merge_keys.yaml, duplicate_key.yaml) are edited directly; this script writes the
files that are awkward to write by hand. Run from anywhere: python3 make_seeds.py
"""
import os
import zipfile

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")
V13 = "tosca_definitions_version: tosca_simple_yaml_1_3\n"


def write(name, data):
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(os.path.join(HERE, name), mode) as f:
        f.write(data)


def nested_flow(depth):
    return V13 + "x: " + "[" * depth + "]" * depth + "\n"


def nested_block(depth):
    out = [V13, "topology_template:\n  node_templates:\n    n:\n      type: tosca.nodes.Root\n",
           "      metadata:\n"]
    for i in range(depth):
        out.append("        " + "  " * i + "k%d:\n" % i)
    out.append("        " + "  " * depth + "leaf\n")
    return "".join(out)


def nested_functions(depth):
    v = "{ get_input: x }"
    for _ in range(depth):
        v = '{ concat: [ "a", %s ] }' % v
    return (V13 + "topology_template:\n  inputs:\n    x:\n      type: string\n"
            "      default: y\n  node_templates:\n    n:\n      type: tosca.nodes.Root\n"
            "  outputs:\n    o:\n      value: %s\n" % v)


def csar(name, files):
    with zipfile.ZipFile(os.path.join(HERE, name), "w") as z:
        for path, data in files:
            zi = zipfile.ZipInfo(path, date_time=(2024, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, data)


def meta(entry):
    return ("TOSCA-Meta-File-Version: 1.1\nCSAR-Version: 1.1\nCreated-By: fuzz\n"
            "Entry-Definitions: %s\n" % entry)


def main():
    # deep nesting: over the default limit (64) and just under it
    write("deep_flow.yaml", nested_flow(300))
    write("deep_flow_60.yaml", nested_flow(58))
    write("deep_block.yaml", nested_block(100))
    write("deep_block_55.yaml", nested_block(55))
    write("deep_functions.yaml", nested_functions(25))
    # invalid UTF-8 and control bytes
    write("invalid_utf8.yaml", b"\xef\xbb\xbf" + V13.encode() +
          b'description: "caf\xc3\xa9 \xff\xfe bad"\nmetadata:\n  k\xc0\x80y: v\n'
          b'  s: "\xed\xa0\x80"\ntopology_template:\n  node_templates:\n'
          b"    n\xe9:\n      type: tosca.nodes.Root\n")
    write("invalid_utf8_key.yaml", V13.encode() + b"metadata:\n  k\xc0\x80y: v\n")
    write("nul_byte.yaml", V13.encode() + b'description: "a\\0b"\x00\n')
    # CSARs: TOSCA.meta with an import, a single root YAML, and escapes
    with open(os.path.join(HERE, "tosca13_min.yaml")) as f:
        simple = f.read()
    types = (V13 + "node_types:\n  my.nodes.App:\n    derived_from: tosca.nodes.SoftwareComponent\n"
             "    properties:\n      port:\n        type: integer\n        default: 80\n")
    entry = (V13 + "imports:\n  - ../Types/types.yaml\n"
             "topology_template:\n  node_templates:\n    h:\n      type: tosca.nodes.Compute\n"
             "    a:\n      type: my.nodes.App\n      requirements:\n        - host: h\n")
    csar("csar_meta.csar", [("TOSCA-Metadata/TOSCA.meta", meta("Definitions/main.yaml")),
                            ("Definitions/main.yaml", entry), ("Types/types.yaml", types)])
    csar("csar_root.csar", [("service.yaml", simple), ("scripts/install.sh", "#!/bin/sh\n")])
    csar("csar_escape_meta.csar", [("TOSCA-Metadata/TOSCA.meta", meta("../../etc/passwd")),
                                   ("main.yaml", entry)])
    csar("csar_escape_import.csar",
         [("TOSCA-Metadata/TOSCA.meta", meta("main.yaml")),
          ("main.yaml", entry.replace("../Types/types.yaml", "../../../etc/passwd"))])


if __name__ == "__main__":
    main()
