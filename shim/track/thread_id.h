/* The calling thread's kernel id, read from glibc's thread descriptor when
 * that can be done safely (see thread_id.c), else from gettid. */
#ifndef CS_THREAD_ID_H
#define CS_THREAD_ID_H

/* At load, in the loading thread. */
void cs_thread_id_init(void);

int cs_thread_id(void);

/* In a child made by clone() without fork's bookkeeping: glibc's descriptor
 * of the cloning thread still holds the parent's id, so gettid it is. */
void cs_thread_id_distrust(void);

#endif
