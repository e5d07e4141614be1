/*
 * racy.c — a program for tests/sanitizer/check.py: two threads add to one counter, without a lock
 * (ThreadSanitizer reports the race) or, with --locked, under one; then it kills itself with
 * SIGKILL, the way an FT test ends its nodes, so a report can never show in its exit status.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static long counter;
static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;
static int locked;

static void *add(void *arg)
{
	for (int i = 0; i < 1000; i++) {
		if (locked)
			pthread_mutex_lock(&counter_lock);
		counter++;
		if (locked)
			pthread_mutex_unlock(&counter_lock);
	}
	return arg;
}

int main(int argc, char **argv)
{
	pthread_t t[2];

	locked = argc > 1 && !strcmp(argv[1], "--locked");
	for (int i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, add, NULL))
			return 1;
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	printf("%ld\n", counter);
	fflush(stdout);
	kill(getpid(), SIGKILL);
	return 1;
}
