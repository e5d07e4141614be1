#!/bin/bash
# domain_xml — `ftvm ... --domain FILE` end to end (see tests/domain/CMakeLists.txt).
# Usage: domain.sh FTVM GUEST_DIR EXAMPLES_DIR
set -u
FTVM=$1
GUEST=$2
EXAMPLES=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0

ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }

# 1. The shipped examples are libvirt domains by libvirt's own schema.
if command -v virt-xml-validate >/dev/null; then
	for x in "$EXAMPLES"/*.xml; do
		if virt-xml-validate "$x" domain >/dev/null 2>&1; then ok "$(basename "$x") validates"; else
			bad "$(basename "$x") does not validate:"; virt-xml-validate "$x" domain; fi
	done
else
	echo "virt-xml-validate missing (libvirt-clients): schema check not run"
fi

# domain NAME DISK_XML [EXTRA_DEVICES] [METADATA] [OS_TYPE_ATTRS] [VCPU] > file
domain() {
	cat <<XML
<domain type='qemu'>
  <name>$1</name>
  <memory unit='KiB'>262144</memory>
  <vcpu>${6:-1}</vcpu>
  <metadata>${4:-}</metadata>
  <os>
    <type ${5:-arch='riscv64' machine='virt'}>hvm</type>
    <loader>$GUEST/fw_dynamic.bin</loader>
    <kernel>$GUEST/Image</kernel>
    <initrd>$GUEST/initramfs.cpio</initrd>
    <cmdline>console=ttyS0 panic=1</cmdline>
  </os>
  <devices>
    $2
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    ${3:-}
  </devices>
</domain>
XML
}

. "$(dirname "$0")/../lib/expect.sh"

truncate -s 64M "$work/disk.img"
FILE_DISK="<disk type='file' device='disk'><source file='$work/disk.img'/><target dev='vda' bus='virtio'/></disk>"

# 2. Bad definitions: one line naming the element, exit 2, nothing booted.
echo '<domain><name>x</name>' > "$work/broken.xml"
expect 2 "not well-formed XML" -- run --domain "$work/broken.xml"
expect 2 "cannot read it" -- run --domain "$work/missing.xml"
echo '<network><name>n</name></network>' > "$work/net.xml"
expect 2 "expected a libvirt <domain>" -- run --domain "$work/net.xml"
domain arch "$FILE_DISK" "" "" "arch='x86_64' machine='pc'" > "$work/x86.xml"
expect 2 "ftvm runs arch='riscv64' machine='virt'" -- run --domain "$work/x86.xml"
domain smp "$FILE_DISK" "" "" "" 2 > "$work/smp.xml"
expect 2 "ftvm runs exactly one vCPU" -- run --domain "$work/smp.xml"
domain gfx "$FILE_DISK" "<graphics type='vnc'/>" > "$work/gfx.xml"
expect 2 "<graphics>: ftvm has no such device" -- run --domain "$work/gfx.xml"
domain ide "<disk type='file' device='disk'><source file='$work/disk.img'/><target dev='hda' bus='ide'/></disk>" > "$work/ide.xml"
expect 2 "ftvm disks are virtio" -- run --domain "$work/ide.xml"
domain eth "$FILE_DISK" "<interface type='ethernet'><model type='virtio'/></interface>" > "$work/eth.xml"
expect 2 "needs <target dev='TAP'>" -- run --domain "$work/eth.xml"
# Disks: only raw ones are read directly; network disks are NBD, checked like a --disk URI.
domain q2 "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$work/disk.img'/></disk>" > "$work/q2.xml"
expect 2 "<driver type='qcow2'>: ftvm reads raw disks" -- run --domain "$work/q2.xml"
domain rbd "<disk type='network' device='disk'><source protocol='rbd' name='p/i'><host name='h'/></source></disk>" > "$work/rbd.xml"
expect 2 "protocol='rbd'>: only nbd is supported" -- run --domain "$work/rbd.xml"
domain nbdrel "<disk type='network' device='disk'><source protocol='nbd' name='e'><host transport='unix' socket='rel.sock'/></source></disk>" > "$work/nbdrel.xml"
expect 2 "the socket path must be absolute" -- run --domain "$work/nbdrel.xml"
domain nbdport "<disk type='network' device='disk'><source protocol='nbd' name='e'><host name='h' port='99999'/></source></disk>" > "$work/nbdport.xml"
expect 2 "port not in 1..65535" -- run --domain "$work/nbdport.xml"
domain nbd2 "<disk type='network' device='disk'><source protocol='nbd'><host name='a'/><host name='b'/></source></disk>" > "$work/nbd2.xml"
expect 2 "exactly one <source><host>, found 2" -- run --domain "$work/nbd2.xml"
long=$(printf 'a%.0s' $(seq 300))
domain nbdlong "<disk type='network' device='disk'><source protocol='nbd' name='e'><host name='$long'/></source></disk>" > "$work/nbdlong.xml"
expect 2 "host name too long" -- run --domain "$work/nbdlong.xml"
domain nbdtls "<disk type='network' device='disk'><source protocol='nbd' tls='yes'><host name='a'/></source></disk>" > "$work/nbdtls.xml"
expect 2 "TLS is not supported" -- run --domain "$work/nbdtls.xml"
domain ok "$FILE_DISK" > "$work/ok.xml"
expect 2 "the domain XML defines the VM" -- run --domain "$work/ok.xml" --mem 128
expect 2 "--connect needs --domain" -- run --connect test:///default

# 3. Volumes and networks through the libvirt API (the test driver, from a node definition).
mkdir -p "$work/pool"
truncate -s 64M "$work/pool/scratch.img"
cat > "$work/node.xml" <<XML
<node>
  <network><name>ftnet</name><bridge name='ftdombr0'/></network>
  <pool type='dir'>
    <name>ftpool</name>
    <uuid>35bb2ad9-388a-cdfe-461a-b8907f6e53fe</uuid>
    <capacity unit='bytes'>107374182400</capacity>
    <allocation unit='bytes'>0</allocation>
    <available unit='bytes'>107374182400</available>
    <source/>
    <target><path>$work/pool</path></target>
    <volume type='file'>
      <name>scratch.img</name>
      <key>$work/pool/scratch.img</key>
      <capacity unit='bytes'>67108864</capacity>
      <target><path>$work/pool/scratch.img</path></target>
    </volume>
  </pool>
</node>
XML
URI="test://$work/node.xml"
VOL_DISK="<disk type='volume' device='disk'><source pool='ftpool' volume='scratch.img'/><target dev='vda' bus='virtio'/></disk>"
domain novol "<disk type='volume' device='disk'><source pool='ftpool' volume='nope.img'/></disk>" > "$work/novol.xml"
expect 2 "volume 'nope.img' of pool 'ftpool'" -- run --domain "$work/novol.xml" --connect "$URI"
domain nopool "<disk type='volume' device='disk'><source pool='other' volume='x.img'/></disk>" > "$work/nopool.xml"
expect 2 "no such pool" -- run --domain "$work/nopool.xml" --connect "$URI"
if ip tuntap add dev ftdomtap0 mode tap 2>/dev/null; then
	trap 'ip link del ftdomtap0 2>/dev/null; rm -rf "$work"' EXIT
	domain net "$FILE_DISK" "<interface type='network'><source network='ftnet'/><target dev='ftdomtap0'/><model type='virtio'/></interface>" > "$work/net-dom.xml"
	expect 2 "TAP device ftdomtap0 is on no bridge, not a port of bridge ftdombr0" -- run --domain "$work/net-dom.xml" --connect "$URI"
	domain nonet "$FILE_DISK" "<interface type='network'><source network='nonet'/><target dev='ftdomtap0'/></interface>" > "$work/nonet-dom.xml"
	expect 2 "network 'nonet'" -- run --domain "$work/nonet-dom.xml" --connect "$URI"
	# Once the TAP is a port of the network's bridge, the guest boots with that NIC.
	ip link add ftdombr0 type bridge && ip link set ftdomtap0 master ftdombr0
	trap 'ip link del ftdomtap0 2>/dev/null; ip link del ftdombr0 2>/dev/null; rm -rf "$work"' EXIT
	expect 0 "ftvm-guest: ready" -- run --domain "$work/net-dom.xml" --connect "$URI" --extra-args ftvm.workload=selftest
else
	echo "cannot create a network device (not root?): network checks not run"
fi

# 4. FT settings from <metadata>: the command line leaves them out, the errors show they were read.
truncate -s 1M "$work/arb"
"$FTVM" arbiter init "$work/arb" --vm ftdom >/dev/null
META="<ftvm:ft xmlns:ftvm='urn:x-ftvm:ft:1' arbiter='$work/arb' peer='127.0.0.1:9' listen='127.0.0.1:0' timeout-ms='400' heartbeat-ms='500'/>"
domain ftdom "$FILE_DISK" "" "$META" > "$work/ft-slow.xml"
expect 2 "--heartbeat (500 ms) must be shorter than --timeout (400 ms)" -- primary --domain "$work/ft-slow.xml"
expect 2 "'9x' is not a number" -- primary --domain "$work/ft-slow.xml" --timeout 9x
"$FTVM" keygen "$work/channel.key" >/dev/null
META="<ftvm:ft xmlns:ftvm='urn:x-ftvm:ft:1' arbiter='$work/arb' listen='127.0.0.1:0' log-transport='rdma' channel-key='$work/channel.key'/>"
domain ftdom "$FILE_DISK" "" "$META" > "$work/ft-rdma.xml"
if [ -d /sys/class/infiniband ] && [ -n "$(ls -A /sys/class/infiniband 2>/dev/null)" ]; then
	echo "an RDMA device is present: the metadata transport check is not run"
else
	expect 1 "cannot listen on 127.0.0.1:0: no RDMA device found" -- backup --domain "$work/ft-rdma.xml"
	expect 2 "listen HOST:PORT and --arbiter PATH are required" -- backup --domain "$work/ok.xml"
fi
META="<ftvm:ft xmlns:ftvm='urn:x-ftvm:ft:1' log-transport='ib'/>"
domain ftdom "$FILE_DISK" "" "$META" > "$work/ft-ib.xml"
expect 2 "log-transport='ib'>: expected tcp or rdma" -- backup --domain "$work/ft-ib.xml"
META="<ftvm:ft xmlns:ftvm='urn:x-ftvm:ft:1' disk-mode='mirrored'/>"
domain ftdom "$FILE_DISK" "" "$META" > "$work/ft-dm.xml"
expect 2 "disk-mode='mirrored'>: expected replicated or shared" -- backup --domain "$work/ft-dm.xml"

# 5. The bundled guest boots from a domain: disk as a file, then as a libvirt volume.
if [ ! -r "$GUEST/Image" ]; then
	echo "SKIP (boot part): no bundled guest in $GUEST"
	[ $fail = 0 ] && exit 77
	exit 1
fi
expect 0 "ftvm-guest: ready" -- run --domain "$work/ok.xml" --extra-args ftvm.workload=selftest
domain nbdgone "<disk type='network' device='disk'><source protocol='nbd' name='e x'><host transport='unix' socket='$work/no server.sock'/></source></disk>" > "$work/nbdgone.xml"
expect 1 "disk nbd+unix:///e%20x?socket=$work/no%20server.sock: cannot connect" -- run --domain "$work/nbdgone.xml"
domain vol "$VOL_DISK" > "$work/vol.xml"
expect 0 "ftvm-guest: ready" -- run --domain "$work/vol.xml" --connect "$URI" --extra-args ftvm.workload=selftest
exit $fail
