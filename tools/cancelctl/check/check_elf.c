/* See check_elf.h. Every libelf accessor used here checks its own bounds
 * against the file size (gelf_getsym, gelf_getdyn, elf_strptr,
 * elf_getdata_rawchunk); what we add is a bound on every loop and on every
 * string we keep, and no pointer arithmetic of our own into the file. */
#include "check_elf.h"

#include <elf.h>
#include <gelf.h>
#include <libelf.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef DF_1_PIE
#define DF_1_PIE 0x08000000
#endif

static pthread_once_t libelf_once = PTHREAD_ONCE_INIT;
static bool libelf_ok;

static void libelf_init(void)
{
	libelf_ok = elf_version(EV_CURRENT) != EV_NONE;
}

const char *elf_object_kind_name(enum elf_object_kind kind)
{
	switch (kind) {
	case ELF_OBJ_EXEC:        return "executable";
	case ELF_OBJ_PIE:         return "pie-executable";
	case ELF_OBJ_STATIC:      return "static-executable";
	case ELF_OBJ_STATIC_PIE:  return "static-pie-executable";
	case ELF_OBJ_SHARED_LIB:  return "shared-library";
	case ELF_OBJ_RELOCATABLE: return "relocatable-object";
	case ELF_OBJ_CORE:        return "core-dump";
	case ELF_OBJ_OTHER:       break;
	}
	return "other";
}

static void set_error(struct elf_object *o, const char *what)
{
	if (o->error[0])
		return;	/* the first problem is the one worth reporting */
	const char *why = elf_errmsg(-1);
	snprintf(o->error, sizeof o->error, "%s%s%s", what, why ? ": " : "", why ? why : "");
}

/* The string at `off` in string-table section `strndx`, or NULL: elf_strptr
 * checks the section index, its type, the offset and the terminating NUL. */
static const char *str_at(Elf *e, size_t strndx, size_t off)
{
	return elf_strptr(e, strndx, off);
}

static char *dup_bounded(const char *s)
{
	return s ? strndup(s, ELF_MAX_STRING) : NULL;
}

static void read_interp(Elf *e, const GElf_Phdr *ph, struct elf_object *o)
{
	if (o->interp || ph->p_filesz == 0)
		return;
	size_t size = ph->p_filesz > ELF_MAX_STRING ? ELF_MAX_STRING : ph->p_filesz;
	Elf_Data *d = elf_getdata_rawchunk(e, ph->p_offset, size, ELF_T_BYTE);
	if (!d || !d->d_buf) {
		set_error(o, "PT_INTERP lies outside the file");
		o->interp = strdup("?");	/* it has one; we cannot say which */
		return;
	}
	o->interp = strndup(d->d_buf, d->d_size);
}

static void read_segments(Elf *e, struct elf_object *o)
{
	size_t n;
	if (elf_getphdrnum(e, &n) != 0) {
		set_error(o, "program headers");
		return;
	}
	if (n > ELF_MAX_PHDRS) {
		n = ELF_MAX_PHDRS;
		o->bounded = true;
	}
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;
		if (!gelf_getphdr(e, (int)i, &ph)) {
			set_error(o, "program header");
			break;
		}
		if (ph.p_type == PT_INTERP)
			read_interp(e, &ph, o);
		else if (ph.p_type == PT_DYNAMIC)
			o->has_dynamic = true;
	}
}

static const char *go_section(const char *name)
{
	static const char *const go_sections[] = {
		".go.buildinfo", ".note.go.buildid", ".gopclntab", ".gosymtab",
	};
	for (size_t i = 0; i < sizeof go_sections / sizeof go_sections[0]; i++)
		if (!strcmp(name, go_sections[i]))
			return go_sections[i];
	return NULL;
}

static bool is_uring_name(const char *name)
{
	return !strncmp(name, "io_uring_", 9);
}

static size_t entry_count(Elf *e, Elf_Data *d, Elf_Type type, struct elf_object *o)
{
	size_t entsize = gelf_fsize(e, type, 1, EV_CURRENT);
	if (!entsize || !d)
		return 0;
	size_t n = d->d_size / entsize;
	if (n > ELF_MAX_SYMS) {
		o->bounded = true;
		n = ELF_MAX_SYMS;
	}
	return n;
}

/* .dynsym: imports we care about (and the shim's exports, when asked). */
static void read_dynsym(Elf *e, Elf_Scn *scn, const GElf_Shdr *sh, const struct strlist *want,
			unsigned flags, struct elf_object *o)
{
	Elf_Data *d = elf_getdata(scn, NULL);
	if (!d) {
		set_error(o, "dynamic symbol table");
		return;
	}
	o->has_dynsym = true;
	size_t n = entry_count(e, d, ELF_T_SYM, o);
	for (size_t i = 1; i < n; i++) {	/* entry 0 is the null symbol */
		GElf_Sym sym;
		if (!gelf_getsym(d, (int)i, &sym))
			break;
		int bind = GELF_ST_BIND(sym.st_info);
		if (bind != STB_GLOBAL && bind != STB_WEAK)
			continue;
		const char *name = str_at(e, sh->sh_link, sym.st_name);
		if (!name || !*name)
			continue;
		if (sym.st_shndx == SHN_UNDEF) {
			if (want && strlist_has(want, name))
				strlist_add(&o->imports, name, ELF_MAX_STRING);
			if (is_uring_name(name))
				strlist_add(&o->uring, name, ELF_MAX_STRING);
			if (!strcmp(name, "syscall"))
				o->imports_syscall = true;
			else if (!strcmp(name, "dlopen"))
				o->imports_dlopen = true;
			else if (!strcmp(name, "dlmopen"))
				o->imports_dlmopen = true;
			continue;
		}
		if (!strcmp(name, "get_module") && GELF_ST_TYPE(sym.st_info) == STT_FUNC)
			o->php_extension = true;
		if (!(flags & ELF_SCAN_EXPORTS))
			continue;
		int type = GELF_ST_TYPE(sym.st_info);
		int vis = GELF_ST_VISIBILITY(sym.st_other);
		if ((type == STT_FUNC || type == STT_GNU_IFUNC) &&
		    (vis == STV_DEFAULT || vis == STV_PROTECTED))
			strlist_add(&o->exports, name, ELF_MAX_STRING);
	}
}

/* .symtab, when not stripped: Go's runtime and a statically linked liburing
 * show up here and nowhere else. */
static void read_symtab(Elf *e, Elf_Scn *scn, const GElf_Shdr *sh, struct elf_object *o)
{
	Elf_Data *d = elf_getdata(scn, NULL);
	if (!d)
		return;	/* debugging aid only: not worth an error */
	size_t n = entry_count(e, d, ELF_T_SYM, o);
	for (size_t i = 1; i < n; i++) {
		GElf_Sym sym;
		if (!gelf_getsym(d, (int)i, &sym))
			break;
		if (sym.st_shndx == SHN_UNDEF || GELF_ST_TYPE(sym.st_info) != STT_FUNC)
			continue;
		const char *name = str_at(e, sh->sh_link, sym.st_name);
		if (!name)
			continue;
		if (!o->go_marker && (!strcmp(name, "runtime.goexit") || !strcmp(name, "runtime.main")))
			o->go_marker = "runtime.goexit";
		else if (is_uring_name(name) && o->uring.n < 16 && !strlist_contains(&o->uring, name))
			strlist_add(&o->uring, name, ELF_MAX_STRING);
	}
}

static void read_dynamic(Elf *e, Elf_Scn *scn, const GElf_Shdr *sh, struct elf_object *o)
{
	Elf_Data *d = elf_getdata(scn, NULL);
	if (!d) {
		set_error(o, "dynamic section");
		return;
	}
	size_t n = entry_count(e, d, ELF_T_DYN, o);
	for (size_t i = 0; i < n; i++) {
		GElf_Dyn dyn;
		if (!gelf_getdyn(d, (int)i, &dyn) || dyn.d_tag == DT_NULL)
			break;
		const char *s = NULL;
		switch (dyn.d_tag) {
		case DT_NEEDED:
			s = str_at(e, sh->sh_link, dyn.d_un.d_val);
			if (!s)
				set_error(o, "DT_NEEDED name");
			else if (o->needed.n >= ELF_MAX_NEEDED)
				o->bounded = true;
			else
				strlist_add(&o->needed, s, ELF_MAX_STRING);
			break;
		case DT_SONAME:
			if (!o->soname)
				o->soname = dup_bounded(str_at(e, sh->sh_link, dyn.d_un.d_val));
			break;
		case DT_RPATH:
			if (!o->rpath)
				o->rpath = dup_bounded(str_at(e, sh->sh_link, dyn.d_un.d_val));
			break;
		case DT_RUNPATH:
			if (!o->runpath)
				o->runpath = dup_bounded(str_at(e, sh->sh_link, dyn.d_un.d_val));
			break;
		case DT_FLAGS_1:
			if (dyn.d_un.d_val & DF_1_NODEFLIB)
				o->nodeflib = true;
			if (dyn.d_un.d_val & DF_1_PIE)
				o->pie_flag = true;
			break;
		}
	}
}

static void read_sections(Elf *e, const struct strlist *want, unsigned flags, struct elf_object *o)
{
	size_t shnum, shstrndx;
	if (elf_getshdrnum(e, &shnum) != 0) {
		set_error(o, "section headers");
		return;
	}
	if (shnum == 0)
		return;
	if (elf_getshdrstrndx(e, &shstrndx) != 0)
		shstrndx = SHN_UNDEF;	/* no names: we can still use the types */
	o->has_sections = true;
	Elf_Scn *scn = NULL;
	size_t seen = 0;
	bool dynsym_done = false, dynamic_done = false, symtab_done = false;
	while ((scn = elf_nextscn(e, scn)) != NULL) {
		if (++seen > ELF_MAX_SCNS) {
			o->bounded = true;
			break;
		}
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh)) {
			set_error(o, "section header");
			continue;
		}
		const char *name = shstrndx != SHN_UNDEF ? str_at(e, shstrndx, sh.sh_name) : NULL;
		if (name && !o->go_marker)
			o->go_marker = go_section(name);
		/* One of each table: a hostile file listing the same table many
		 * times must not multiply the work. */
		if (sh.sh_type == SHT_DYNSYM && !dynsym_done) {
			dynsym_done = true;
			read_dynsym(e, scn, &sh, want, flags, o);
		} else if (sh.sh_type == SHT_DYNAMIC && !dynamic_done) {
			dynamic_done = true;
			read_dynamic(e, scn, &sh, o);
		} else if (sh.sh_type == SHT_SYMTAB && !symtab_done) {
			symtab_done = true;
			read_symtab(e, scn, &sh, o);
		}
	}
}

static void classify(unsigned type, struct elf_object *o)
{
	switch (type) {
	case ET_EXEC:
		o->kind = o->interp ? ELF_OBJ_EXEC : ELF_OBJ_STATIC;
		break;
	case ET_DYN:
		if (o->interp)
			o->kind = ELF_OBJ_PIE;
		else
			o->kind = o->pie_flag ? ELF_OBJ_STATIC_PIE : ELF_OBJ_SHARED_LIB;
		break;
	case ET_REL:
		o->kind = ELF_OBJ_RELOCATABLE;
		break;
	case ET_CORE:
		o->kind = ELF_OBJ_CORE;
		break;
	default:
		o->kind = ELF_OBJ_OTHER;
	}
}

/* end = off + count * size, false if it overflows or passes file_size. */
static bool fits(uint64_t off, uint64_t count, uint64_t size, uint64_t file_size)
{
	if (size && count > (UINT64_MAX - off) / size)
		return false;
	return off + count * size <= file_size;
}

/* e_phnum == PN_XNUM: the real count is section 0's sh_info (the ELF
 * extended numbering). 0 when there is no section 0 to say it, or it says 0. */
static size_t extended_phnum(Elf *e)
{
	GElf_Shdr sh0;
	Elf_Scn *scn = elf_getscn(e, 0);
	if (!scn || !gelf_getshdr(scn, &sh0))
		return 0;
	return sh0.sh_info;
}

/* A file cut short (a bad download, a partial copy) cannot run: ld.so would
 * refuse it. Say so rather than guess from what is left. */
static void check_extent(Elf *e, const GElf_Ehdr *eh, uint64_t file_size, struct elf_object *o)
{
	size_t phnum = 0, shnum = 0;
	const char *what = NULL;
	if (eh->e_phnum != PN_XNUM)
		phnum = eh->e_phnum;
	else if (!(phnum = extended_phnum(e))) {
		/* Read as "no program headers", it looked like a static-pie
		 * executable (no PT_INTERP): it is a file nothing can load. */
		o->corrupt = true;
		snprintf(o->error, sizeof o->error, "e_phnum is PN_XNUM (0xffff) but section 0 holds no "
			 "program header count: corrupt");
		return;
	}
	if (phnum && !fits(eh->e_phoff, phnum, gelf_fsize(e, ELF_T_PHDR, 1, EV_CURRENT), file_size))
		what = "the program headers lie";
	/* The header's count; 0 means "in section 0" (extended numbering), which
	 * libelf reads for us. libelf quietly reports 0 sections if they lie
	 * outside the file, so the header is asked first. */
	if (eh->e_shnum)
		shnum = eh->e_shnum;
	else if (elf_getshdrnum(e, &shnum) != 0)
		shnum = 0;
	if (!what && shnum && eh->e_shoff &&
	    !fits(eh->e_shoff, shnum, gelf_fsize(e, ELF_T_SHDR, 1, EV_CURRENT), file_size))
		what = "the section headers lie";
	for (size_t i = 0; !what && i < phnum && i < ELF_MAX_PHDRS; i++) {
		GElf_Phdr ph;
		if (gelf_getphdr(e, (int)i, &ph) && ph.p_type == PT_LOAD &&
		    !fits(ph.p_offset, 1, ph.p_filesz, file_size))
			what = "a loadable segment lies";
	}
	if (!what)
		return;
	o->corrupt = true;
	snprintf(o->error, sizeof o->error, "%s past the end of the file (%llu bytes): "
		 "truncated or corrupt", what, (unsigned long long)file_size);
}

static int scan(Elf *e, uint64_t file_size, const struct strlist *want, unsigned flags,
		struct elf_object *o)
{
	if (!e) {
		set_error(o, "cannot read as ELF");
		return -1;
	}
	if (elf_kind(e) != ELF_K_ELF) {
		snprintf(o->error, sizeof o->error, "%s",
			 elf_kind(e) == ELF_K_AR ? "an ar archive, not a program" : "not an ELF file");
		return -1;
	}
	GElf_Ehdr eh;
	if (!gelf_getehdr(e, &eh)) {
		set_error(o, "ELF header");
		return -1;
	}
	o->is_elf = true;
	o->elf_class = gelf_getclass(e);
	o->machine = eh.e_machine;
	o->x86_64 = o->elf_class == ELFCLASS64 && eh.e_machine == EM_X86_64 &&
		    eh.e_ident[EI_DATA] == ELFDATA2LSB;
	o->kind = ELF_OBJ_OTHER;
	if (!o->x86_64 || (flags & ELF_SCAN_HEADER_ONLY)) {
		classify(eh.e_type, o);
		return 0;
	}
	check_extent(e, &eh, file_size, o);
	if (o->corrupt)
		return 0;
	read_segments(e, o);
	read_sections(e, want, flags, o);
	classify(eh.e_type, o);
	if (o->has_dynamic && !o->has_sections && !o->error[0])
		snprintf(o->error, sizeof o->error,
			 "no section headers (stripped with sstrip?): imports not read");
	return 0;
}

int elf_object_scan_memory(const void *buf, size_t len, const struct strlist *want,
			   unsigned flags, struct elf_object *o)
{
	*o = (struct elf_object){ 0 };
	pthread_once(&libelf_once, libelf_init);
	if (!libelf_ok) {
		snprintf(o->error, sizeof o->error, "libelf version mismatch");
		return -1;
	}
	/* elf_memory wants a writable image it may convert in place. */
	char *copy = malloc(len ? len : 1);
	if (!copy) {
		snprintf(o->error, sizeof o->error, "out of memory");
		return -1;
	}
	memcpy(copy, buf, len);
	Elf *e = elf_memory(copy, len);
	int rc = scan(e, len, want, flags, o);
	elf_end(e);
	free(copy);
	return rc;
}

int elf_object_scan_fd(int fd, const struct strlist *want, unsigned flags, struct elf_object *o)
{
	*o = (struct elf_object){ 0 };
	pthread_once(&libelf_once, libelf_init);
	if (!libelf_ok) {
		snprintf(o->error, sizeof o->error, "libelf version mismatch");
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(o->error, sizeof o->error, "not a regular file");
		return -1;
	}
	Elf *e = elf_begin(fd, ELF_C_READ, NULL);
	int rc = scan(e, (uint64_t)st.st_size, want, flags, o);
	elf_end(e);
	return rc;
}

void elf_object_free(struct elf_object *o)
{
	free(o->interp);
	free(o->soname);
	free(o->rpath);
	free(o->runpath);
	strlist_free(&o->needed);
	strlist_free(&o->imports);
	strlist_free(&o->exports);
	strlist_free(&o->uring);
	*o = (struct elf_object){ 0 };
}
