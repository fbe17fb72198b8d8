/* long cs_syscall_cp(_Atomic uint64_t *state, long nr,
 *                    long a1, long a2, long a3, long a4, long a5, long a6);
 *
 * A system call that a cancel can interrupt without a lost wake-up.
 *
 * The check of the cancel flag and the syscall instruction both lie between
 * cs_cp_begin and cs_cp_end. When the cancel signal arrives with the program
 * counter in that range, the handler (cancel_signal.c) moves it to
 * cs_cp_cancel: either the call had not started, or the kernel interrupted it
 * and rewound the counter onto the syscall instruction to restart it. Once
 * the counter is past the syscall instruction the call has completed and its
 * result stands. Returns the raw result (-errno on failure), or -ECANCELED
 * without entering the kernel when the flag (bit 63 of *state) is set.
 */
	.text
	.globl	cs_syscall_cp
	.hidden	cs_syscall_cp
	.globl	cs_cp_begin
	.hidden	cs_cp_begin
	.globl	cs_cp_end
	.hidden	cs_cp_end
	.globl	cs_cp_cancel
	.hidden	cs_cp_cancel
	.type	cs_syscall_cp, @function
cs_syscall_cp:
	.cfi_startproc
	mov	%rdi, %r11		/* state */
	mov	%rsi, %rax		/* system call number */
	mov	%rdx, %rdi		/* a1 */
	mov	%rcx, %rsi		/* a2 */
	mov	%r8, %rdx		/* a3 */
	mov	%r9, %r10		/* a4 */
	mov	8(%rsp), %r8		/* a5 */
	mov	16(%rsp), %r9		/* a6 */
cs_cp_begin:
	testb	$0x80, 7(%r11)		/* CANCEL: bit 63 of the state word */
	jnz	cs_cp_cancel
	syscall
cs_cp_end:
	ret
cs_cp_cancel:
	mov	$-125, %rax		/* -ECANCELED */
	ret
	.cfi_endproc
	.size	cs_syscall_cp, .-cs_syscall_cp

	.section .note.GNU-stack,"",@progbits
