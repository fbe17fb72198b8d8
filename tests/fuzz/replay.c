/* Replays fuzzer inputs through LLVMFuzzerTestOneInput without libFuzzer:
 * every file named on the command line, or found (not recursively) in a
 * directory named there. The meson test runs it on corpus/ and crashes/ so
 * that an input that once crashed the reader fails CI if it crashes again.
 * Exit status 0 if every input was read and replayed. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_BYTES (16u << 20)

static int replay_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || st.st_size > REPLAY_MAX_BYTES) {
		fprintf(stderr, "replay: %s: cannot read (or larger than %u bytes)\n", path, REPLAY_MAX_BYTES);
		if (fd >= 0)
			close(fd);
		return 1;
	}
	size_t size = (size_t)st.st_size;
	uint8_t *buf = malloc(size ? size : 1);
	size_t got = 0;
	while (buf && got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (!buf || got != size) {
		fprintf(stderr, "replay: %s: short read\n", path);
		free(buf);
		return 1;
	}
	LLVMFuzzerTestOneInput(buf, size);
	free(buf);
	printf("replayed %s (%zu bytes)\n", path, size);
	return 0;
}

static int replay_dir(const char *dir, int *count)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);
	if (n < 0) {
		perror(dir);
		return 1;
	}
	int bad = 0;
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
		if (names[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			bad |= replay_file(path);
			(*count)++;
		}
		free(names[i]);
	}
	free(names);
	return bad;
}

int main(int argc, char **argv)
{
	int bad = 0, count = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
			bad |= replay_dir(argv[i], &count);
		} else {
			bad |= replay_file(argv[i]);
			count++;
		}
	}
	printf("%d inputs replayed\n", count);
	return bad || count == 0;
}
