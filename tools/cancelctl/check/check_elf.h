/* The facts `cancelctl check` needs from one ELF file, read with libelf.
 * Input is untrusted: every table is bounded, every string checked; a file
 * libelf cannot make sense of gives partial facts and an error text, never a
 * crash. Nothing here looks at the file system beyond the descriptor given. */
#ifndef CANCELCTL_CHECK_ELF_H
#define CANCELCTL_CHECK_ELF_H

#include <stdbool.h>
#include <stddef.h>

#include "check_strlist.h"

/* Bounds: a real program is far below each; a hostile file stops there. */
#define ELF_MAX_PHDRS   4096
#define ELF_MAX_SCNS    65536
#define ELF_MAX_SYMS    (4u << 20)
#define ELF_MAX_NEEDED  1024
#define ELF_MAX_STRING  4096

enum elf_object_kind {
	ELF_OBJ_EXEC,        /* ET_EXEC with an interpreter */
	ELF_OBJ_PIE,         /* ET_DYN with an interpreter */
	ELF_OBJ_STATIC,      /* ET_EXEC, no interpreter */
	ELF_OBJ_STATIC_PIE,  /* ET_DYN, no interpreter, DF_1_PIE */
	ELF_OBJ_SHARED_LIB,  /* ET_DYN, no interpreter */
	ELF_OBJ_RELOCATABLE, /* .o */
	ELF_OBJ_CORE,
	ELF_OBJ_OTHER,
};

struct elf_object {
	bool is_elf;            /* false: not an ELF file (error says why) */
	bool x86_64;            /* ELFCLASS64 + EM_X86_64, what the shim is built for */
	int elf_class;          /* ELFCLASS32/64 */
	unsigned machine;       /* e_machine */
	enum elf_object_kind kind;
	char *interp;           /* PT_INTERP, NULL if none */
	bool has_dynamic;       /* a PT_DYNAMIC segment */
	bool has_sections;      /* section headers we could read */
	bool has_dynsym;
	char *soname, *rpath, *runpath;
	bool nodeflib;          /* DF_1_NODEFLIB: no ld.so.cache, no default dirs */
	bool pie_flag;          /* DF_1_PIE: a position-independent executable */
	struct strlist needed;  /* DT_NEEDED, in order */
	struct strlist imports; /* undefined dynamic symbols that are in `want` */
	struct strlist exports; /* defined dynamic functions (ELF_SCAN_EXPORTS) */
	struct strlist uring;   /* io_uring_* symbols, imported or linked in */
	bool imports_syscall;   /* syscall(2): raw system calls, unseen by the shim */
	bool imports_dlopen;    /* loads libraries at run time: unseen by check */
	bool imports_dlmopen;   /* ... possibly into another namespace: unseen by the shim */
	bool php_extension;     /* defines get_module: PHP loads it with RTLD_DEEPBIND */
	const char *go_marker;  /* why we think it is Go, NULL if we don't */
	bool bounded;           /* some table was longer than our bound and was cut */
	bool corrupt;           /* headers or segments lie past the end: truncated */
	char error[160];        /* non-empty: part of the file could not be read */
};

enum {
	ELF_SCAN_EXPORTS = 1,   /* collect defined dynamic functions (the shim) */
	ELF_SCAN_HEADER_ONLY = 2, /* class, machine, type only: probing a library */
};

/* Scan len bytes at buf (copied: libelf may convert in place). `want`, if not
 * NULL, must be sorted (strlist_sort_unique). Returns 0 if the buffer is an
 * ELF file (facts may still be partial, see error), -1 if not. */
int elf_object_scan_memory(const void *buf, size_t len, const struct strlist *want,
			   unsigned flags, struct elf_object *o);
/* Same for an open regular file; reads with pread, never maps it, so a file
 * truncated under us cannot raise SIGBUS. */
int elf_object_scan_fd(int fd, const struct strlist *want, unsigned flags,
		       struct elf_object *o);
void elf_object_free(struct elf_object *o);
const char *elf_object_kind_name(enum elf_object_kind kind);

#endif
