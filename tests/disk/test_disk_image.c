/*
 * test_disk_image.c — disk.image: util/disk_image.h against a real qemu-storage-daemon (no guest):
 * bytes written through NBD are the file's bytes, bounds and read-only hold, and a server that is
 * killed, hung (SIGSTOP), absent, or that accepts and never answers gives an error within the
 * deadline — never a hang — after which the image fails every request at once.
 * Skips (77) without qemu-storage-daemon.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/disk_image.h"
#include "util/time.h"

extern char **environ;

static char dir[] = "/tmp/ftvm-disk-image-XXXXXX";
static char raw[96], sock[96], uri[160], err[1024];
static int failures;

#define CHECK(cond, ...)                                                                             \
	do {                                                                                         \
		if (!(cond)) {                                                                       \
			printf("FAIL %s:%d: ", __FILE__, __LINE__);                                  \
			printf(__VA_ARGS__);                                                         \
			printf("\n");                                                                \
			failures++;                                                                  \
		}                                                                                    \
	} while (0)

static pid_t serve(const char *image)
{
	char file_opt[256], export_opt[128], addr_opt[256];
	snprintf(file_opt, sizeof(file_opt), "driver=file,node-name=f0,filename=%s", image);
	snprintf(addr_opt, sizeof(addr_opt), "addr.type=unix,addr.path=%s", sock);
	snprintf(export_opt, sizeof(export_opt), "type=nbd,id=e0,node-name=f0,name=d0,writable=on");
	char *argv[] = { "qemu-storage-daemon", "--blockdev", file_opt, "--nbd-server", addr_opt, "--export",
			 export_opt, NULL };
	pid_t pid;
	unlink(sock);
	if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
		return -1;
	for (int i = 0; i < 600 && access(sock, F_OK) != 0; i++)
		usleep(50000);
	return access(sock, F_OK) == 0 ? pid : -1;
}

static void end(pid_t pid)
{
	kill(pid, SIGCONT);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void round_trip(void)
{
	pid_t pid = serve(raw);
	CHECK(pid > 0, "qemu-storage-daemon did not start");
	struct disk_image *img;
	int ret = disk_image_open(uri, false, &img, err, sizeof(err));
	CHECK(ret == 0, "open %s: %d %s", uri, ret, err);
	if (ret)
		goto out;
	CHECK(disk_image_is_nbd(img), "not an NBD image");
	CHECK(disk_image_size(img) == 4u << 20, "size %llu", (unsigned long long)disk_image_size(img));
	uint8_t buf[65536], back[65536];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	CHECK(disk_image_write(img, buf, sizeof(buf), 1u << 20) == 0, "write");
	CHECK(disk_image_flush(img) == 0, "flush");
	CHECK(disk_image_read(img, back, sizeof(back), 1u << 20) == 0 && !memcmp(buf, back, sizeof(buf)), "read back");
	CHECK(disk_image_read(img, back, 512, (4u << 20) - 256) == -EINVAL, "read past the end");
	CHECK(disk_image_write(img, buf, 512, UINT64_MAX - 100) == -EINVAL, "write at a huge offset");
	disk_image_close(img);
	/* The file itself holds the bytes (the server wrote them there). */
	int fd = open(raw, O_RDONLY);
	CHECK(fd >= 0 && pread(fd, back, sizeof(back), 1u << 20) == (ssize_t)sizeof(back) && !memcmp(buf, back, sizeof(back)),
	      "the file does not hold what was written through NBD");
	close(fd);
	ret = disk_image_open(uri, true, &img, err, sizeof(err));
	CHECK(ret == 0, "open read-only: %s", err);
	if (ret == 0) {
		CHECK(disk_image_write(img, buf, 512, 0) == -EROFS, "write on a read-only image");
		disk_image_close(img);
	}
out:
	end(pid);
}

/* The server goes away (SIGKILL) or hangs (SIGSTOP) while the image is open. */
static void server_failure(int sig, int want, double at_least, double at_most)
{
	pid_t pid = serve(raw);
	struct disk_image *img;
	uint8_t buf[4096];
	CHECK(pid > 0 && disk_image_open(uri, false, &img, err, sizeof(err)) == 0, "open: %s", err);
	if (pid <= 0)
		return;
	kill(pid, sig);
	if (sig == SIGKILL)
		waitpid(pid, NULL, 0);
	double t0 = time_mono_s();
	int ret = disk_image_read(img, buf, sizeof(buf), 0);
	double took = time_mono_s() - t0;
	CHECK(ret == want, "signal %d: read gave %d, want %d", sig, ret, want);
	CHECK(took >= at_least && took <= at_most, "signal %d: the failure took %.1f s, want %.1f..%.1f", sig, took,
	      at_least, at_most);
	t0 = time_mono_s();
	CHECK(disk_image_write(img, buf, sizeof(buf), 0) == -EIO && disk_image_flush(img) == -EIO,
	      "a given-up image must fail every later request");
	CHECK(time_mono_s() - t0 < 1.0, "later requests must fail at once");
	printf("signal %d: first request failed after %.2f s (%s)\n", sig, took, strerror(-ret));
	t0 = time_mono_s();
	disk_image_close(img);
	CHECK(time_mono_s() - t0 < 5.0, "close took %.1f s", time_mono_s() - t0);
	end(pid);
}

/* A listener that accepts and never speaks: the handshake has a deadline too. */
static void silent_server(void)
{
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock);
	unlink(sock);
	CHECK(l >= 0 && bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 4) == 0, "listener");
	struct disk_image *img;
	double t0 = time_mono_s();
	int ret = disk_image_open(uri, false, &img, err, sizeof(err));
	double took = time_mono_s() - t0;
	CHECK(ret == -ETIMEDOUT && strstr(err, "handshake"), "silent server: %d %s", ret, err);
	CHECK(took >= DISK_IMAGE_NBD_DEADLINE_MS / 1000.0 - 0.5 && took < 30, "silent server: %.1f s", took);
	close(l);
	unlink(sock);
	ret = disk_image_open(uri, false, &img, err, sizeof(err));
	CHECK(ret < 0 && strstr(err, "cannot connect"), "no server: %d %s", ret, err);
}

static void formatted_files(void)
{
	char path[160];
	struct disk_image *img;
	snprintf(path, sizeof(path), "%s/q.img", dir);
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, "QFI\xfb\0\0\0\3", 8) == 8 && ftruncate(fd, 1 << 20) == 0, "make %s", path);
	close(fd);
	int ret = disk_image_open(path, false, &img, err, sizeof(err));
	CHECK(ret == -EMEDIUMTYPE && strstr(err, "qcow2") && strstr(err, "NBD URI"), "qcow2 as a path: %d %s", ret, err);
	const char *format = NULL;
	CHECK(disk_image_file_format(path, &format, err, sizeof(err)) == 0 && !strcmp(format, "qcow2"), "format");
	CHECK(disk_image_file_format(raw, &format, err, sizeof(err)) == 0 && !strcmp(format, "raw"), "raw format");
}

int main(void)
{
	if (system("command -v qemu-storage-daemon >/dev/null") != 0) {
		printf("SKIP: qemu-storage-daemon not installed (scripts/setup)\n");
		return 77;
	}
	if (!mkdtemp(dir))
		return 1;
	snprintf(raw, sizeof(raw), "%s/raw.img", dir);
	snprintf(sock, sizeof(sock), "%s/nbd.sock", dir);
	snprintf(uri, sizeof(uri), "nbd+unix:///d0?socket=%s", sock);
	int fd = open(raw, O_CREAT | O_RDWR | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, 4u << 20) != 0)
		return 1;
	close(fd);

	round_trip();
	server_failure(SIGKILL, -EIO, 0, 5);
	server_failure(SIGSTOP, -ETIMEDOUT, DISK_IMAGE_NBD_DEADLINE_MS / 1000.0 - 0.5, 30);
	silent_server();
	formatted_files();

	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		printf("cannot remove %s\n", dir);
	printf("disk.image: %s\n", failures ? "FAILED" : "all checks passed");
	return failures ? 1 : 0;
}
