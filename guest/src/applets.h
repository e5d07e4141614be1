/*
 * applets.h — the programs of the guest's multi-call binary (main.c). Each is one file with one
 * entry point; in the initramfs they are symlinks to /usr/bin/ftvm-guest, like busybox applets.
 */
#ifndef FTVM_GUEST_APPLETS_H
#define FTVM_GUEST_APPLETS_H

int init_main(int argc, char **argv);
int kvd_main(int argc, char **argv);
int selftest_main(int argc, char **argv);
int cpu_main(int argc, char **argv);
int disk_main(int argc, char **argv);

#endif
