"""pciplan plans the PCI/PCIe topology of QEMU guests with an integer program.

Every device gets a bus, slot and function so that its hotplug requirement holds (a device
on q35's root bus cannot be unplugged; one behind a root port can), with the fewest added
controllers, proven optimal. Requests, plans and batch results are the JSON objects of
docs/formats.md, as dicts.

A placement service plans a guest and, when its policy cannot be met, reports why:

    import pciplan
    try:
        plan = pciplan.plan({"name": "web-01", "devices": [
            {"id": "net0", "model": "virtio-net-pci", "hotplug": "off"},
            {"id": "disk0", "model": "virtio-blk-pci"}]})
        place(plan["controllers"], plan["devices"])
    except pciplan.Infeasible as e:
        for c in e.causes:
            log.warning("%s on %s: %s", c["rule"], c["devices"], c["hints"])

A what-if study over a fleet (every core, memory flat, results in order):

    fleet = [json.loads(line) for line in open("fleet.jsonl")]
    for spare in range(4):
        variant = ({**r, "policy": {**r.get("policy", {}), "spare_ports": spare}}
                   for r in fleet)
        added = sum(o["cost"] for o in pciplan.batch(variant) if o["ok"])
        print(f"{spare} spare ports per guest: {added} controllers in the fleet")

`plan_xml` does the same for a libvirt domain XML (the planned domain defines unchanged).
"""

from ._errors import Error, Infeasible, InvalidInput
from ._native import BatchIterator, __version__, batch, plan, plan_xml

__all__ = [
    "BatchIterator",
    "Error",
    "Infeasible",
    "InvalidInput",
    "__version__",
    "batch",
    "plan",
    "plan_xml",
]
