"""Adapters for the kernel facilities the daemon drives: one module per facility.

dm (device-mapper ioctl), dm_status (status/table line parsers), nvme_fabrics (NVMe-oF host),
nbd (generic netlink + handshake), loop, block (sysfs), kmsg (error reasons), modules (probe).
"""
