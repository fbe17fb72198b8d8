/* Rebinding the interposed calls of libraries loaded with RTLD_DEEPBIND.
 *
 * Why rebind rather than drop the flag: RTLD_DEEPBIND exists so that a
 * library resolves its own symbols (and its dependencies') before the
 * program's: PHP sets it so an extension that bundles its own copy of a
 * library (a different libpcre, libxml, libssl... than the one php links)
 * does not call into php's copy with its own data structures. Dropping the
 * flag would change the binding of every symbol of every extension, and the
 * shim cannot tell which ones clash. Rebinding changes only the slots of the
 * calls the shim exports, and only a slot that holds exactly the libc
 * function the shim forwards to: the binding the slot has without the flag.
 * A library that defines its own recv (or bundles one) keeps it.
 *
 * What a slot is: an R_X86_64_JUMP_SLOT (a PLT call) or R_X86_64_GLOB_DAT
 * (the function's address taken) relocation in the object's DT_JMPREL /
 * DT_RELA tables. A slot bound now holds libc's address; a lazily bound
 * JUMP_SLOT still points into the object's own PLT, and is rewritten when
 * the handle's own scope (the first one a deep-bound object searches)
 * resolves the name to libc's function. Slots in the RELRO segment are made
 * writable for the write and read-only again.
 *
 * Objects in another link-map namespace (dlmopen) are left alone: they have
 * their own libc and no shim. Absolute data relocations (R_X86_64_64 with a
 * function's address in an initialised table) are not rewritten: only
 * calls and address-of through the GOT. */
#include "base/deepbind.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "exports_names.gen.h"
#include "base/log.h"

void *(*cs_dlopen_real)(const char *, int);

void cs_deepbind_resolve(void)
{
	void *p = dlsym(RTLD_NEXT, "dlopen");
	if (p)
		__atomic_store_n(&cs_dlopen_real, (void *(*)(const char *, int))p, __ATOMIC_RELEASE);
}

/* One exported call: the shim's definition and libc's (what a deep-bound
 * slot holds). Sorted by name. */
struct rebind_entry {
	const char *name;
	uintptr_t own, libc;
};

static const char *const names[] = {
#define CS_NAME(n) #n,
	CS_EXPORTED_NAMES(CS_NAME)
#undef CS_NAME
};
#define NNAMES (sizeof names / sizeof names[0])

static struct rebind_entry table[NNAMES];
static size_t ntable;
static uintptr_t own_base;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct rebind_entry *)a)->name, ((const struct rebind_entry *)b)->name);
}

/* A name joins the table only when the global scope resolves it to the shim
 * (so "the binding without the flag" is the shim: a program that defines
 * its own recv keeps it for everyone) and libc defines it. */
static void build_table(void)
{
	Dl_info self, info;

	if (!dladdr((void *)build_table, &self))
		return;
	own_base = (uintptr_t)self.dli_fbase;
	for (size_t i = 0; i < NNAMES; i++) {
		void *own = dlsym(RTLD_DEFAULT, names[i]);
		void *libc = dlsym(RTLD_NEXT, names[i]);
		if (!own || !libc || !dladdr(own, &info) || (uintptr_t)info.dli_fbase != own_base)
			continue;
		table[ntable++] = (struct rebind_entry){ names[i], (uintptr_t)own, (uintptr_t)libc };
	}
	dlerror();	/* a name libc lacks left an error string: not the caller's */
	qsort(table, ntable, sizeof table[0], by_name);
}

static const struct rebind_entry *lookup(const char *name)
{
	struct rebind_entry key = { .name = name };
	return bsearch(&key, table, ntable, sizeof table[0], by_name);
}

struct snapshot {
	uintptr_t *out;
	size_t cap, n;
};

static int snap_one(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct snapshot *s = arg;
	(void)size;
	if (s->n < s->cap)
		s->out[s->n] = info->dlpi_addr;
	s->n++;
	return 0;
}

size_t cs_deepbind_snapshot(uintptr_t *out, size_t cap)
{
	struct snapshot s = { out, cap, 0 };
	dl_iterate_phdr(snap_one, &s);
	return s.n;
}

/* An object the dlopen brought in, copied out of dl_iterate_phdr (whose lock
 * must not be held while calling dlopen/dlinfo: lock order). */
struct candidate {
	uintptr_t bias;
	const ElfW(Phdr) *phdr;	/* valid once pinned and checked */
	int phnum;
	char *name;
};

struct collect {
	const uintptr_t *before;
	size_t nbefore;
	struct candidate *c;
	size_t n, cap;
	int oom;
};

static int collect_one(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct collect *k = arg;
	(void)size;
	for (size_t i = 0; i < k->nbefore; i++)
		if (k->before[i] == info->dlpi_addr)
			return 0;
	if (!info->dlpi_name || !info->dlpi_name[0])
		return 0;	/* the program, the vDSO: never loaded by dlopen */
	if (k->n == k->cap) {
		size_t cap = k->cap ? 2 * k->cap : 16;
		struct candidate *c = realloc(k->c, cap * sizeof *c);
		if (!c) {
			k->oom = 1;
			return 1;
		}
		k->c = c;
		k->cap = cap;
	}
	if (!(k->c[k->n].name = strdup(info->dlpi_name))) {
		k->oom = 1;
		return 1;
	}
	k->c[k->n].phdr = info->dlpi_phdr;
	k->c[k->n].phnum = info->dlpi_phnum;
	k->c[k->n++].bias = info->dlpi_addr;
	return 0;
}

/* Where an object lies, and the pages ld.so made read-only after relocating
 * (its RELRO part, whole pages only). */
struct extent {
	uintptr_t lo, hi, relro_lo, relro_hi;
};

static void object_extent(const struct link_map *lm, const struct candidate *c, struct extent *e)
{
	const ElfW(Phdr) *ph = c->phdr;
	long page = sysconf(_SC_PAGESIZE);

	*e = (struct extent){ UINTPTR_MAX, 0, 0, 0 };
	for (int i = 0; i < c->phnum; i++) {
		uintptr_t start = lm->l_addr + ph[i].p_vaddr, end = start + ph[i].p_memsz;
		if (ph[i].p_type == PT_LOAD) {
			e->lo = start < e->lo ? start : e->lo;
			e->hi = end > e->hi ? end : e->hi;
		} else if (ph[i].p_type == PT_GNU_RELRO) {
			/* Rounded down at both ends, as ld.so does: the page
			 * the segment ends in stays writable (it holds data
			 * after it), and must stay so. */
			e->relro_lo = start & ~(uintptr_t)(page - 1);
			e->relro_hi = end & ~(uintptr_t)(page - 1);
		}
	}
}

/* The dynamic section's pointers: relocated in place by ld.so, except where
 * the section is read-only (then they are still offsets). */
static uintptr_t dyn_ptr(const struct link_map *lm, const struct extent *x, ElfW(Addr) v)
{
	return v >= x->lo && v < x->hi ? v : lm->l_addr + v;
}

/* A per-call answer to "does the handle's scope resolve this name to libc?"
 * (lazy slots): 0 unknown, 1 yes, 2 no. */
struct scope_cache {
	void *handle;
	unsigned char verdict[NNAMES];
};

static int scope_gives_libc(struct scope_cache *sc, const struct rebind_entry *e)
{
	size_t i = (size_t)(e - table);
	if (!sc->verdict[i])
		sc->verdict[i] = (uintptr_t)dlsym(sc->handle, e->name) == e->libc ? 1 : 2;
	return sc->verdict[i] == 1;
}

struct patcher {
	const struct link_map *lm;
	struct extent x;
	int relro_open;	/* the RELRO pages are writable now */
	int failed;
	long patched;
};

static int write_slot(struct patcher *p, uintptr_t *slot, uintptr_t value)
{
	uintptr_t a = (uintptr_t)slot;
	if (a < p->x.lo || a + sizeof *slot > p->x.hi)
		return 0;	/* not the object's own memory: leave it */
	if (a >= p->x.relro_lo && a < p->x.relro_hi && !p->relro_open) {
		if (mprotect((void *)p->x.relro_lo, p->x.relro_hi - p->x.relro_lo, PROT_READ | PROT_WRITE)) {
			p->failed = errno;
			return 0;
		}
		p->relro_open = 1;
	}
	__atomic_store_n(slot, value, __ATOMIC_RELAXED);
	p->patched++;
	return 1;
}

static void patch_table(struct patcher *p, struct scope_cache *sc, const ElfW(Rela) *rel, size_t size,
			const ElfW(Sym) *symtab, const char *strtab)
{
	for (size_t i = 0; i < size / sizeof *rel && !p->failed; i++) {
		unsigned type = ELF64_R_TYPE(rel[i].r_info), sym = ELF64_R_SYM(rel[i].r_info);
		const struct rebind_entry *e;
		uintptr_t *slot, v;

		if ((type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) || !sym)
			continue;
		if (!(e = lookup(strtab + symtab[sym].st_name)))
			continue;
		slot = (uintptr_t *)(p->lm->l_addr + rel[i].r_offset);
		if ((uintptr_t)slot < p->x.lo || (uintptr_t)slot + sizeof *slot > p->x.hi)
			continue;
		v = __atomic_load_n(slot, __ATOMIC_RELAXED);
		if (v == e->libc ||
		    (type == R_X86_64_JUMP_SLOT && v >= p->x.lo && v < p->x.hi && scope_gives_libc(sc, e)))
			write_slot(p, slot, e->own);
	}
}

/* Rewrites one pinned object's slots. */
static long patch_object(const struct link_map *lm, const struct candidate *c, struct scope_cache *sc, int *err)
{
	struct patcher p = { .lm = lm };
	const ElfW(Rela) *jmprel = NULL, *rela = NULL;
	const ElfW(Sym) *symtab = NULL;
	const char *strtab = NULL;
	size_t pltrelsz = 0, relasz = 0;
	long pltrel = DT_RELA;

	object_extent(lm, c, &p.x);
	if (p.x.lo >= p.x.hi)
		return 0;
	/* Never libc (its internal slots are its own business) nor the shim. */
	if ((table[0].libc >= p.x.lo && table[0].libc < p.x.hi) || (own_base >= p.x.lo && own_base < p.x.hi))
		return 0;
	for (const ElfW(Dyn) *d = lm->l_ld; d->d_tag != DT_NULL; d++) {
		switch (d->d_tag) {
		case DT_JMPREL: jmprel = (const void *)dyn_ptr(lm, &p.x, d->d_un.d_ptr); break;
		case DT_PLTRELSZ: pltrelsz = d->d_un.d_val; break;
		case DT_PLTREL: pltrel = (long)d->d_un.d_val; break;
		case DT_RELA: rela = (const void *)dyn_ptr(lm, &p.x, d->d_un.d_ptr); break;
		case DT_RELASZ: relasz = d->d_un.d_val; break;
		case DT_SYMTAB: symtab = (const void *)dyn_ptr(lm, &p.x, d->d_un.d_ptr); break;
		case DT_STRTAB: strtab = (const void *)dyn_ptr(lm, &p.x, d->d_un.d_ptr); break;
		}
	}
	if (!symtab || !strtab || pltrel != DT_RELA)
		return 0;
	if (jmprel)
		patch_table(&p, sc, jmprel, pltrelsz, symtab, strtab);
	if (rela)
		patch_table(&p, sc, rela, relasz, symtab, strtab);
	if (p.relro_open && mprotect((void *)p.x.relro_lo, p.x.relro_hi - p.x.relro_lo, PROT_READ) && !p.failed)
		p.failed = errno;
	*err = p.failed;
	return p.patched;
}

long cs_deepbind_rebind(void *handle, const uintptr_t *before, size_t nbefore)
{
	struct collect k = { before, nbefore, NULL, 0, 0, 0 };
	struct scope_cache *sc;
	long total = 0;
	int saved = errno, err = 0;
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);

	pthread_once(&table_once, build_table);
	if (!ntable || !cs_dlopen_real)
		goto out;
	dl_iterate_phdr(collect_one, &k);
	if (k.oom || !(sc = calloc(1, sizeof *sc))) {
		cs_log_failure(CS_LOG_WARN, "out of memory after a dlopen(RTLD_DEEPBIND): its calls bypass the shim");
		total = -1;
		goto free;
	}
	sc->handle = handle;
	for (size_t i = 0; i < k.n && !err; i++) {
		/* Pin it (a concurrent dlclose cannot unmap it under us), and
		 * make sure the pinned object is the one seen, in our
		 * namespace (a NOLOAD dlopen looks in the caller's: ours). */
		void *pin = cs_dlopen_real(k.c[i].name, RTLD_LAZY | RTLD_NOLOAD);
		struct link_map *lm = NULL;
		Lmid_t ns = -1;

		if (!pin)
			continue;
		if (!dlinfo(pin, RTLD_DI_LINKMAP, &lm) && lm && lm->l_addr == k.c[i].bias &&
		    !dlinfo(pin, RTLD_DI_LMID, &ns) && ns == LM_ID_BASE)
			total += patch_object(lm, &k.c[i], sc, &err);
		dlclose(pin);
	}
	free(sc);
	if (err) {
		cs_log_failure(CS_LOG_WARN, "cannot rebind a library loaded with RTLD_DEEPBIND (%s): some of its calls bypass the shim",
			       cs_errtext(err));
		total = -1;
	} else if (total) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		cs_debug("rebound %ld calls of %zu object(s) loaded with RTLD_DEEPBIND in %ld us", total, k.n,
			 (long)((t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000));
	}
free:
	for (size_t i = 0; i < k.n; i++)
		free(k.c[i].name);
	free(k.c);
out:
	dlerror();	/* our lookups' failures are not the caller's dlerror() */
	errno = saved;
	return total;
}
