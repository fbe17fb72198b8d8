/* libcsneeded.so for the library-search tests: needs libcsdep.so. */
int csdep_recv(int fd);

int csneeded(int fd) { return csdep_recv(fd); }
