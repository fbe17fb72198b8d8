/* void *dlopen(const char *file, int flags): the exported hook.
 *
 * libc's dlopen looks at its return address to learn who calls it: the
 * caller's DT_RPATH/DT_RUNPATH for a bare name, its $ORIGIN, its link-map
 * namespace. A C wrapper would make the shim the caller; this stub jumps to
 * libc with the application's return address intact. Only a call with
 * RTLD_DEEPBIND and a file name that contains a '/' and no '$' (a path the
 * caller does not change the meaning of: PHP passes its extension_dir's
 * full path) goes through cs_dlopen_deepbind (wrap_dlopen.c), which rebinds
 * the new objects' interposed calls. Everything else is libc's dlopen, as if
 * the shim were not there. */
	.text
	.globl	dlopen
	.type	dlopen, @function
	.hidden	cs_dlopen_real
	.hidden	cs_dlopen_deepbind
	.hidden	cs_dlopen_boot
dlopen:
	.cfi_startproc
	testl	$0x8, %esi		/* RTLD_DEEPBIND */
	jz	3f
	testq	%rdi, %rdi
	jz	3f
	xorl	%edx, %edx		/* a '/' seen */
	movq	%rdi, %rax
1:	movzbl	(%rax), %ecx
	testl	%ecx, %ecx
	jz	2f
	cmpl	$0x24, %ecx		/* '$': a dynamic string token */
	je	3f
	cmpl	$0x2f, %ecx		/* '/' */
	jne	4f
	movl	$1, %edx
4:	incq	%rax
	jmp	1b
2:	testl	%edx, %edx
	jnz	cs_dlopen_deepbind
3:	movq	cs_dlopen_real(%rip), %rax
	testq	%rax, %rax
	jz	cs_dlopen_boot
	jmp	*%rax
	.cfi_endproc
	.size	dlopen, .-dlopen

	.section .note.GNU-stack, "", @progbits
