"""mayastor-csi: the CSI node plugin (Identity + Node services, driver io.openebs.csi-mayastor).

It attaches a published nexus with the kernel NVMe-oF host, makes and mounts its filesystem on the
staging path, bind-mounts it (or the block device) into pods, grows it after a nexus resize. It
keeps no state of its own: what is staged where is read back from the kernel (mountinfo, sysfs).
"""
