/* void *dlopen(const char *file, int flags): the exported hook.
 *
 * libc's dlopen looks at its return address to learn who calls it: the
 * caller's DT_RPATH/DT_RUNPATH for a bare name, its $ORIGIN, its namespace. A C wrapper would make the shim the caller; this stub jumps to
 * libc with the application's return address intact. Only a call with
 * RTLD_DEEPBIND that cs_dlopen_wants_rebind (wrap_dlopen.c) accepts goes
 * through cs_dlopen_deepbind, which rebinds the new objects' interposed
 * calls. Everything else is libc's dlopen, as if the shim were not there. */
	.text
	.globl	dlopen
	.type	dlopen, @function
	.hidden	cs_dlopen_real
	.hidden	cs_dlopen_wants_rebind
	.hidden	cs_dlopen_deepbind
	.hidden	cs_dlopen_boot
dlopen:
	.cfi_startproc
	testl	$0x8, %esi		/* RTLD_DEEPBIND */
	jz	1f
	pushq	%rdi
	.cfi_adjust_cfa_offset 8
	pushq	%rsi
	.cfi_adjust_cfa_offset 8
	movq	16(%rsp), %rdx		/* the caller's return address */
	subq	$8, %rsp		/* 16-byte alignment for the call */
	.cfi_adjust_cfa_offset 8
	call	cs_dlopen_wants_rebind
	addq	$8, %rsp
	.cfi_adjust_cfa_offset -8
	popq	%rsi
	.cfi_adjust_cfa_offset -8
	popq	%rdi
	.cfi_adjust_cfa_offset -8
	testl	%eax, %eax
	jnz	cs_dlopen_deepbind
1:	movq	cs_dlopen_real(%rip), %rax
	testq	%rax, %rax
	jz	cs_dlopen_boot
	jmp	*%rax
	.cfi_endproc
	.size	dlopen, .-dlopen

	.section .note.GNU-stack, "", @progbits
