/* Not Go, but marked like a Go binary: a .go.buildinfo section, which every
 * Go binary since 1.13 carries (no Go toolchain on the test machine). */
__attribute__((section(".go.buildinfo"), used))
static const char buildinfo[32] = "\xff Go buildinf:";

int main(void)
{
	return 0;
}
