# Rewrites libvirt's own C headers out of its protocol definitions before rpcgen (daemon/CMakeLists.txt):
# the generated codecs need only libtirpc's XDR routines and the public <libvirt/libvirt.h> constants.
s|^%#include "internal.h"$|%#include <rpc/rpc.h>\n%#include <libvirt/libvirt.h>|
/^%#include "virxdrdefs.h"$/d
/^%#include "virsocket.h"$/d
