"""Debian's stock kernel under QEMU: the kernel users run, for the benchmarks.

The lab's user-mode Linux kernel runs user code natively and emulates every system
call (tens of microseconds each) and every new page (~150 us): timings measured there
are not what users see. This boots Debian's ``linux-image-6.1.0-*-amd64`` (downloaded
with ``apt-get download`` and unpacked with ``dpkg -x`` into ``/var/cache/lvs-lab``:
nothing is installed on the host) under ``qemu-system-x86_64`` with a small initramfs
(busybox, the virtio, 9p, ip_vs and ipip modules) that mounts the host's root read-only
over 9p and runs one command in it, chrooted, with ``lo`` up and a route for the
benchmarks' destinations (IPVS refuses destinations that are not unicast). Results
come back through a second, writable 9p folder.

The engine: KVM where a normal KVM answers (``kvm_intel``/``kvm_amd`` loaded), else
QEMU's TCG, which emulates every instruction, the kernel's and the process's, at a
similar cost: its ratios are close to real hardware's, its absolute times are not.
The figures say which engine gave them.

.. code-block:: python

    from lvs_lab import refkernel
    code, output = refkernel.run(["python3", "-c", "print(1)"])
"""

import glob
import gzip
import os
import re
import shlex
import shutil
import subprocess
import tempfile

QEMU = "/usr/bin/qemu-system-x86_64"
BUSYBOX = "/bin/busybox"
PACKAGE = re.compile(r"^linux-image-(6\.1\.0-\d+-amd64) ")
# What the initramfs loads (with their dependencies): the 9p root, IPVS with every
# scheduler the benchmarks use, ipip for tunnel destinations.
MODULES = ("virtio_pci", "9pnet_virtio", "9p", "crc32c_generic", "ip_vs", "ip_vs_rr", "ip_vs_wrr", "ipip")

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /modules/$m || echo "refkernel: insmod $m failed"; done
mkdir -p /root /out
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose root /root || echo "refkernel: no 9p root"
mount -t 9p -o trans=virtio,version=9p2000.L out /out || echo "refkernel: no 9p out"
for d in proc sys dev; do mount --bind /$d /root/$d; done
for d in tmp run dev/shm; do mount -t tmpfs tmpfs /root/$d; done
mkdir -p /root/run/out && mount --bind /out /root/run/out
ip link set lo up; ip route add 10.0.0.0/8 dev lo
printf '#!/bin/sh\nexec /sbin/modprobe -d %(tree)s "$@"\n' > /root/run/modprobe; chmod +x /root/run/modprobe
echo /run/modprobe > /proc/sys/kernel/modprobe
echo "refkernel: up, kernel $(uname -r)"
chroot /root /bin/sh -c '. /run/out/run.sh' > /out/output 2>&1
echo $? > /out/rc
sync; echo o > /proc/sysrq-trigger
"""


class RefKernelError(RuntimeError):
    """The reference kernel could not be fetched, built or booted (the text says why)."""


CACHE = "/var/cache/lvs-lab/refkernel"  # outside /run: the guest has a /run of its own; kept across labs


def folder(cache=None):
    return cache or CACHE


def _newest_package():
    out = subprocess.run(["apt-cache", "search", "--names-only", r"^linux-image-6\.1\.0-[0-9]+-amd64$"],
                         capture_output=True, text=True, check=False).stdout
    versions = [m.group(1) for m in map(PACKAGE.match, out.splitlines()) if m]
    if not versions:
        raise RefKernelError("no linux-image-6.1.0-*-amd64 package known to apt (apt-get update?)")
    return max(versions, key=lambda v: int(v.split("-")[1]))


def fetch(cache=None):
    """``(vmlinuz, module tree, version)`` of Debian's newest stock 6.1 kernel, unpacked
    once into the state folder (apt-get download + dpkg -x, depmod on the tree)."""
    base = folder(cache)
    found = sorted(glob.glob(os.path.join(base, "tree", "boot", "vmlinuz-*")))
    if not found:
        version = _newest_package()
        os.makedirs(base, exist_ok=True)
        subprocess.run(["apt-get", "download", f"linux-image-{version}"], cwd=base, check=True,
                       capture_output=True)
        deb = glob.glob(os.path.join(base, f"linux-image-{version}_*.deb"))[0]
        subprocess.run(["dpkg", "-x", deb, os.path.join(base, "tree")], check=True)
        subprocess.run(["depmod", "-b", os.path.join(base, "tree"), version], check=True)
        os.unlink(deb)
        found = sorted(glob.glob(os.path.join(base, "tree", "boot", "vmlinuz-*")))
    vmlinuz = found[-1]
    version = os.path.basename(vmlinuz).removeprefix("vmlinuz-")
    return vmlinuz, os.path.join(base, "tree"), version


def _closure(moddir):
    """The modules of :data:`MODULES` with their dependencies, dependencies first."""
    deps = {}
    with open(os.path.join(moddir, "modules.dep"), encoding="utf-8") as fh:
        for line in fh:
            path, _, needs = line.partition(":")
            deps[path] = needs.split()
    by_name = {os.path.basename(p).removesuffix(".ko").replace("-", "_"): p for p in deps}
    order = []

    def visit(path):
        for dep in deps[path]:
            visit(dep)
        if path not in order:
            order.append(path)

    for name in MODULES:
        if name in by_name:  # (built in: nothing to load)
            visit(by_name[name])
    return order


def initramfs(cache=None):
    """The initramfs (a gzipped cpio written with busybox's cpio from a staging folder)."""
    vmlinuz, tree, version = fetch(cache)
    moddir = os.path.join(tree, "lib", "modules", version)
    target = os.path.join(folder(cache), f"initrd-{version}.gz")
    if os.path.exists(target):
        return vmlinuz, target, tree
    if not os.path.exists(BUSYBOX):
        raise RefKernelError(f"{BUSYBOX} is missing (apt-get install busybox-static; scripts/bootstrap does)")
    with tempfile.TemporaryDirectory() as stage:
        for sub in ("bin", "modules", "proc", "sys", "dev"):
            os.makedirs(os.path.join(stage, sub))
        shutil.copy(BUSYBOX, os.path.join(stage, "bin", "busybox"))
        order = _closure(moddir)
        for path in order:
            shutil.copy(os.path.join(moddir, path), os.path.join(stage, "modules", os.path.basename(path)))
        with open(os.path.join(stage, "modules.order"), "w", encoding="utf-8") as fh:
            fh.write("\n".join(os.path.basename(p) for p in order) + "\n")
        with open(os.path.join(stage, "init"), "w", encoding="utf-8") as fh:
            fh.write(INIT % {"tree": shlex.quote(tree)})
        os.chmod(os.path.join(stage, "init"), 0o755)
        listing = subprocess.run(["find", ".", "-mindepth", "1"], cwd=stage, capture_output=True, check=True,
                                 text=True).stdout
        cpio = subprocess.run([BUSYBOX, "cpio", "-o", "-H", "newc"], cwd=stage, input=listing.encode(),
                              capture_output=True, check=True).stdout
    with gzip.open(target, "wb") as fh:
        fh.write(cpio)
    return vmlinuz, target, tree


def accelerator():
    """``kvm`` where a normal KVM module is loaded (not PVM: a stock kernel hangs there
    right after decompression), else ``tcg``."""
    normal = any(os.path.isdir(f"/sys/module/{name}") for name in ("kvm_intel", "kvm_amd"))
    return "kvm" if normal and os.access("/dev/kvm", os.R_OK | os.W_OK) else "tcg"


def run(argv, timeout=3600, memory="3072M", cache=None, cwd="/", out=None):
    """Run ``argv`` (in the host's root, chrooted, as root) on the reference kernel;
    return ``(exit code, its output)``. ``out``: a host folder the command sees as
    ``/run/out`` (writable: files it writes there stay; default a temporary one)."""
    if not os.path.exists(QEMU):
        raise RefKernelError(f"{QEMU} is missing (apt-get install qemu-system-x86; scripts/bootstrap does)")
    vmlinuz, initrd, _ = initramfs(cache)
    with tempfile.TemporaryDirectory(prefix="lvs-refkernel-") as scratch:
        out = out or scratch
        os.makedirs(out, exist_ok=True)
        for stale in ("rc", "output"):
            if os.path.exists(os.path.join(out, stale)):
                os.unlink(os.path.join(out, stale))
        with open(os.path.join(out, "run.sh"), "w", encoding="utf-8") as fh:
            fh.write(f"cd {shlex.quote(cwd)} && exec {shlex.join(argv)}\n")
        engine = accelerator()
        cmd = [QEMU, "-accel", engine, "-cpu", "host" if engine == "kvm" else "max", "-m", memory, "-smp", "1",
               "-nographic", "-no-reboot", "-kernel", vmlinuz, "-initrd", initrd,
               "-append", "console=ttyS0 quiet panic=-1",
               "-virtfs", "local,path=/,mount_tag=root,readonly=on,security_model=none,multidevs=remap",
               "-virtfs", f"local,path={out},mount_tag=out,security_model=none"]
        console = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                                 stdin=subprocess.DEVNULL)
        try:
            with open(os.path.join(out, "rc"), encoding="ascii") as fh:
                code = int(fh.read().strip())
            with open(os.path.join(out, "output"), encoding="utf-8", errors="replace") as fh:
                output = fh.read()
        except (OSError, ValueError):
            raise RefKernelError("the reference kernel did not run the command; its console:\n"
                                 + console.stdout[-3000:] + console.stderr[-2000:]) from None
    return code, output

