/*
 * One embedded blob (a CUDA fatbin) as read-only data: the Makefile assembles
 * this once per .cu file with GR_BLOB_NAME (the file's base name) and, when
 * nvcc built the fatbin, GR_BLOB_FILE (its path). Without GR_BLOB_FILE the
 * blob is empty, which the programs read as "kernels not built in".
 * C sees: extern const unsigned char gr_fatbin_NAME[], gr_fatbin_NAME_end[];
 */
#define GR_CAT2(a, b) a##b
#define GR_CAT(a, b) GR_CAT2(a, b)
#define GR_START GR_CAT(gr_fatbin_, GR_BLOB_NAME)
#define GR_END GR_CAT(GR_START, _end)

    .section .rodata
    .balign 64
    .globl GR_START
    .globl GR_END
GR_START:
#ifdef GR_BLOB_FILE
    .incbin GR_BLOB_FILE
#endif
GR_END:
    .byte 0
    .section .note.GNU-stack,"",@progbits
