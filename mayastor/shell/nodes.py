"""The shell's tree. Everything under /pools and /nexus is read from the daemon over gRPC each time
a command looks at it (ls, cd); /nvmet is the kernel's own nvmet configuration read through our
configfs object model. configshell-fb conventions: ui_command_<verb> (docstring = help),
ui_complete_<verb> for completion, get/set through declared parameter groups."""

from __future__ import annotations

import uuid as _uuid

import grpc
from configshell_fb import ConfigNode, ExecutionError

from ..client.context import UsageError, human, parse_size
from ..grpc import protos as P

POOL_STATES = {0: "unknown", 1: "online", 2: "degraded", 3: "faulted"}
NEXUS_STATES = {0: "unknown", 1: "online", 2: "degraded", 3: "faulted", 4: "shutting_down", 5: "shutdown"}
CHILD_STATES = {0: "unknown", 1: "online", 2: "degraded", 3: "faulted"}
SHARES = {"none": 0, "nvmf": 1}


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except UsageError as exc:
        raise ExecutionError(str(exc)) from None


class Node(ConfigNode):
    """Rebuilds its children from the daemon before ls/cd look at them."""

    def __init__(self, name, parent=None, shell=None):
        super().__init__(name, parent, shell)

    @property
    def api(self):
        """The gRPC stubs (mayastor.client.context.Context) the root holds."""
        return self.get_root()._api

    def refresh(self) -> None:
        """Replace the dynamic children; static ones override nothing here."""

    def refresh_tree(self) -> None:
        self.refresh()
        for child in list(self.children):
            if isinstance(child, Node):
                child.refresh_tree()

    def refresh_all(self) -> None:
        """Re-read the whole tree unless that was just done for this same command line."""
        root = self.get_root()
        if not getattr(root, "fresh", False):
            root.refresh_tree()
            root.fresh = True

    def _sync(self, wanted: dict[str, tuple]) -> None:
        """Children named as ``wanted`` (name -> (class, args)): gone ones removed, new ones added."""
        have = {c.name: c for c in self.children}
        for name, child in have.items():
            if name not in wanted:
                self.remove_child(child)
        for name, (cls, args) in wanted.items():
            if name in have and isinstance(have[name], cls):
                have[name].update(*args)
            else:
                if name in have:
                    self.remove_child(have[name])
                cls(name, self, *args)

    def update(self, *args) -> None:
        pass

    def child_named(self, name: str, missing: str):
        """The child called ``name``; ExecutionError(``missing``) when there is none."""
        child = next((c for c in self.children if c.name == name), None)
        if child is None:
            raise ExecutionError(missing)
        return child

    def ui_complete_delete(self, parameters, text, current_param):
        """Completes the names of this node's children (the collections' delete <name>)."""
        return [c.name for c in self.children if c.name.startswith(text)] if current_param == "name" else []

    def execute_command(self, command, pparams=[], kparams={}):  # noqa: B006  (configshell's signature)
        """gRPC errors become the shell's own error: one line, and the REPL carries on."""
        try:
            return super().execute_command(command, pparams, kparams)
        except grpc.RpcError as exc:
            detail = (exc.details() or "").replace("\n", " ")
            raise ExecutionError(f"gRPC status {exc.code().name}: {detail}") from None

    def ui_command_ls(self, path=None, depth=None):
        """Lists the tree under path (read fresh from the daemon)."""
        self.refresh_all()
        return super().ui_command_ls(path, depth)

    def ui_command_cd(self, path=None):
        """Moves to path (read fresh from the daemon)."""
        self.refresh_all()
        return super().ui_command_cd(path)


class MessageNode(Node):
    """A node that shows one object of the daemon (its gRPC message, replaced at each refresh)."""

    def __init__(self, name, parent, msg):
        super().__init__(name, parent)
        self.msg = msg

    def update(self, msg) -> None:
        self.msg = msg


# /pools ------------------------------------------------------------------------------------------
class Pools(Node):
    def __init__(self, parent):
        super().__init__("pools", parent)

    def refresh(self) -> None:
        pools = self.api.pool.ListPools(P.pool.ListPoolOptions()).pools
        self._sync({p.name: (Pool, (p,)) for p in pools})

    def summary(self):
        return (f"{len(self.children)} pools", None)

    def ui_command_create(self, name, disk, uuid=None):
        """Creates a pool on a disk URI: create <name> <disk> [uuid=<uuid>]."""
        req = P.pool.CreatePoolRequest(name=name, disks=disk.split(","))
        if uuid:
            req.uuid.value = uuid
        p = self.api.pool.CreatePool(req)
        self.shell.log.info(f"Created pool {p.name} ({p.uuid}).")
        self.refresh()

    def ui_command_delete(self, name):
        """Destroys a pool: delete <name>."""
        self.api.pool.DestroyPool(P.pool.DestroyPoolRequest(name=name))
        self.shell.log.info(f"Deleted pool {name}.")
        self.refresh()


class Pool(MessageNode):
    def __init__(self, name, parent, msg):
        super().__init__(name, parent, msg)
        Replicas(self)

    def summary(self):
        p = self.msg
        return (
            f"{POOL_STATES.get(p.state, '?')} capacity {human(p.capacity, 'i')}, used {human(p.used, 'i')}, "
            f"disks {' '.join(p.disks)}",
            p.state == 1,
        )


class Replicas(Node):
    def __init__(self, parent):
        super().__init__("replicas", parent)

    def refresh(self) -> None:
        reps = self.api.replica.ListReplicas(P.replica.ListReplicaOptions(poolname={"value": self.parent.name}))
        self._sync({r.name: (Replica, (r,)) for r in reps.replicas})

    def summary(self):
        return (f"{len(self.children)} replicas", None)

    def ui_command_create(self, name, size, thin="true", share="none", uuid=None):
        """Creates a replica in this pool: create <name> <size> [thin=true|false] [share=none|nvmf] [uuid=..]."""
        if share not in SHARES:
            raise ExecutionError(f"share must be one of {', '.join(SHARES)}")
        r = self.api.replica.CreateReplica(
            P.replica.CreateReplicaRequest(
                name=name,
                uuid=uuid or str(_uuid.uuid4()),
                pooluuid=self.parent.name,
                size=_size(size),
                thin=thin.lower() in ("true", "yes", "1"),
                share=SHARES[share],
            )
        )
        self.shell.log.info(f"Created replica {r.name} ({r.uuid}) {r.uri}")
        self.refresh()

    def ui_complete_create(self, parameters, text, current_param):
        choices = {"thin": ["true", "false"], "share": list(SHARES)}.get(current_param, [])
        return [c for c in choices if c.startswith(text)]

    def ui_command_delete(self, name):
        """Destroys a replica of this pool: delete <name>."""
        child = self.child_named(name, f"no replica {name} in pool {self.parent.name}")
        self.api.replica.DestroyReplica(P.replica.DestroyReplicaRequest(uuid=child.msg.uuid))
        self.shell.log.info(f"Deleted replica {name}.")
        self.refresh()


class Replica(MessageNode):
    def __init__(self, name, parent, msg):
        super().__init__(name, parent, msg)
        self.define_config_group_param("attribute", "size", "string", "replica size (set: resize)")
        self.define_config_group_param("attribute", "entity_id", "string", "volume the replica belongs to")
        self.define_config_group_param("attribute", "uuid", "string", "replica uuid", writable=False)
        self.define_config_group_param("attribute", "uri", "string", "share URI", writable=False)

    def summary(self):
        r = self.msg
        share = {0: "not shared", 1: "nvmf"}.get(r.share, "?")
        return (f"{human(r.size, 'i')} {'thin' if r.thin else 'thick'}, {share}, {r.uri}", True)

    def ui_getgroup_attribute(self, name):
        r = self.msg
        return {
            "size": str(r.size),
            "entity_id": r.entity_id if r.HasField("entity_id") else "",
            "uuid": r.uuid,
            "uri": r.uri,
        }.get(name)

    def ui_setgroup_attribute(self, name, value):
        if name == "size":
            self.msg = self.api.replica.ResizeReplica(
                P.replica.ResizeReplicaRequest(uuid=self.msg.uuid, requested_size=_size(value))
            )
        elif name == "entity_id":
            self.msg = self.api.replica.SetReplicaEntityId(
                P.replica.SetReplicaEntityIdRequest(uuid=self.msg.uuid, entity_id=value)
            )
        self.shell.log.info(f"{name} is now {self.ui_getgroup_attribute(name)}")

    def ui_command_share(self, protocol="nvmf"):
        """Shares the replica: share [nvmf]."""
        if protocol != "nvmf":
            raise ExecutionError("only nvmf shares")
        self.msg = self.api.replica.ShareReplica(P.replica.ShareReplicaRequest(uuid=self.msg.uuid, share=1))
        self.shell.log.info(self.msg.uri)

    def ui_command_unshare(self):
        """Stops sharing the replica."""
        self.msg = self.api.replica.UnshareReplica(P.replica.UnshareReplicaRequest(uuid=self.msg.uuid))
        self.shell.log.info(self.msg.uri)


# /nexus ------------------------------------------------------------------------------------------
class Nexuses(Node):
    def __init__(self, parent):
        super().__init__("nexus", parent)

    def refresh(self) -> None:
        nexus = self.api.nexus.ListNexus(P.nexus.ListNexusOptions()).nexus_list
        self._sync({n.name: (Nexus, (n,)) for n in nexus})

    def summary(self):
        return (f"{len(self.children)} nexuses", None)

    def ui_command_create(self, name, size, children, uuid=None):
        """Creates a nexus: create <name> <size> <child uri>[,<child uri>...] [uuid=..]."""
        n = self.api.nexus.CreateNexus(
            P.nexus.CreateNexusRequest(
                name=name, uuid=uuid or str(_uuid.uuid4()), size=_size(size), children=children.split(",")
            )
        ).nexus
        self.shell.log.info(f"Created nexus {n.name} ({n.uuid}).")
        self.refresh()

    def ui_command_delete(self, name):
        """Destroys a nexus: delete <name>."""
        child = self.child_named(name, f"no nexus {name}")
        self.api.nexus.DestroyNexus(P.nexus.DestroyNexusRequest(uuid=child.msg.uuid))
        self.shell.log.info(f"Deleted nexus {name}.")
        self.refresh()


class Nexus(MessageNode):
    def __init__(self, name, parent, msg):
        super().__init__(name, parent, msg)
        Children(self)

    def summary(self):
        n = self.msg
        return (
            f"{NEXUS_STATES.get(n.state, '?')} {human(n.size, 'i')}"
            + (f", published {n.device_uri}" if n.device_uri else ", not published"),
            n.state == 1,
        )

    def ui_command_publish(self, protocol="nvmf"):
        """Publishes the nexus: publish [nvmf|none] (none: a local block device)."""
        share = {"nvmf": 1, "none": 0}.get(protocol)
        if share is None:
            raise ExecutionError("protocol: nvmf or none")
        self.msg = self.api.nexus.PublishNexus(P.nexus.PublishNexusRequest(uuid=self.msg.uuid, share=share)).nexus
        self.shell.log.info(self.msg.device_uri)

    def ui_command_unpublish(self):
        """Unpublishes the nexus."""
        self.msg = self.api.nexus.UnpublishNexus(P.nexus.UnpublishNexusRequest(uuid=self.msg.uuid)).nexus
        self.shell.log.info(f"{self.name} unpublished")

    def ui_command_add(self, uri, rebuild="true"):
        """Adds a child: add <uri> [rebuild=true|false]."""
        self.msg = self.api.nexus.AddChildNexus(
            P.nexus.AddChildNexusRequest(
                uuid=self.msg.uuid, uri=uri, norebuild=rebuild.lower() not in ("true", "yes", "1")
            )
        ).nexus
        self.shell.log.info(f"added {uri}")

    def ui_command_remove(self, uri):
        """Removes a child: remove <uri>."""
        self.msg = self.api.nexus.RemoveChildNexus(P.nexus.RemoveChildNexusRequest(uuid=self.msg.uuid, uri=uri)).nexus
        self.shell.log.info(f"removed {uri}")

    def ui_complete_remove(self, parameters, text, current_param):
        return [c.uri for c in self.msg.children if c.uri.startswith(text)] if current_param == "uri" else []


class Children(Node):
    def __init__(self, parent):
        super().__init__("children", parent)

    def refresh(self) -> None:
        self._sync({f"child{i}": (Child, (c,)) for i, c in enumerate(self.parent.msg.children)})

    def summary(self):
        return (f"{len(self.children)} children", None)


class Child(MessageNode):
    """A child (named by its slot: URIs cannot be path components); its URI is in the summary."""

    def summary(self):
        c = self.msg
        extra = f" rebuild {c.rebuild_progress}%" if c.rebuild_progress else ""
        return (f"{CHILD_STATES.get(c.state, '?')} {c.uri}{extra}", c.state == 1)

    def _op(self, action: int, what: str) -> None:
        nexus = self.parent.parent
        nexus.msg = self.api.nexus.ChildOperation(
            P.nexus.ChildOperationRequest(nexus_uuid=nexus.msg.uuid, uri=self.msg.uri, action=action)
        ).nexus
        self.shell.log.info(f"{self.msg.uri} {what}")

    def ui_command_offline(self):
        """Takes the child offline (it returns with a partial resync)."""
        self._op(0, "offline")

    def ui_command_online(self):
        """Brings the child back online."""
        self._op(1, "online")

    def ui_command_fault(self):
        """Faults the child as an I/O error would (online brings it back with a rebuild)."""
        self._op(2, "faulted")


# /nvmet ------------------------------------------------------------------------------------------
class Nvmet(Node):
    """The kernel's nvmet configuration as configfs holds it (read-only here: the daemon owns it)."""

    def __init__(self, parent):
        self._why: str | None = None  # why configfs cannot be read, at the last refresh
        super().__init__("nvmet", parent)

    def refresh(self) -> None:
        from configfs import Root

        try:
            root = Root()
            subsystems = root.subsystems
            ports = root.ports
        except Exception as exc:  # noqa: BLE001  no configfs/nvmet on this machine
            self._sync({})
            self._why = str(exc)
            return
        self._why = None
        wanted = {
            "subsystems": (NvmetGroup, ("subsystems", [(s.nqn, _subsys_summary(s)) for s in subsystems])),
            "ports": (NvmetGroup, ("ports", [(str(p.portid), _port_summary(p)) for p in ports])),
        }
        self._sync(wanted)

    def summary(self):
        why = self._why
        return (f"not available: {why}", False) if why else ("kernel nvmet (configfs)", None)


class NvmetGroup(Node):
    def __init__(self, name, parent, kind, items):
        super().__init__(name, parent)
        self.update(kind, items)

    def update(self, kind, items) -> None:
        self.items = dict(items)
        self._sync({k: (NvmetItem, (v,)) for k, v in self.items.items()})

    def summary(self):
        return (f"{len(self.items)}", None)


class NvmetItem(Node):
    def __init__(self, name, parent, text):
        super().__init__(name, parent)
        self.text = text

    def update(self, text) -> None:
        self.text = text

    def summary(self):
        return (self.text, None)


def _subsys_summary(s) -> str:
    try:
        ns = [str(n.nsid) for n in s.namespaces]
        hosts = "any host" if s.allow_any_host else f"{len(s.allowed_hosts)} hosts"
        return f"namespaces {','.join(ns) or '-'}, {hosts}"
    except Exception as exc:  # noqa: BLE001
        return f"? ({exc})"


def _port_summary(p) -> str:
    try:
        return f"{p.trtype} {p.traddr}:{p.trsvcid}, {len(p.subsystems)} subsystems"
    except Exception as exc:  # noqa: BLE001
        return f"? ({exc})"
