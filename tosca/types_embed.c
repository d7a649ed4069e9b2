/*
 * The normative type definitions (the YAML files in tosca/types) built into the library
 * so that no run-time file is needed. The build passes TOSCA_TYPES_DIR.
 */
#include <stddef.h>

#include "types_embed.h"

#ifndef TOSCA_TYPES_DIR
#error "TOSCA_TYPES_DIR must name the directory of the normative type files"
#endif

#define TOSCA_EMBED(sym, file)                                                                 \
    __asm__(".section .rodata\n"                                                               \
            ".global " #sym "\n"                                                               \
            ".balign 16\n" #sym ":\n"                                                         \
            ".incbin \"" TOSCA_TYPES_DIR "/" file "\"\n"                                       \
            ".global " #sym "_end\n" #sym "_end:\n"                                           \
            ".byte 0\n"                                                                        \
            ".previous\n")

TOSCA_EMBED(tosca__types_simple, "simple_profile.yaml");
TOSCA_EMBED(tosca__types_simple_2_0, "simple_profile_2_0.yaml");
TOSCA_EMBED(tosca__types_orc, "orchestrator.yaml");

extern const char tosca__types_simple[], tosca__types_simple_end[];
extern const char tosca__types_simple_2_0[], tosca__types_simple_2_0_end[];
extern const char tosca__types_orc[], tosca__types_orc_end[];

const struct tosca_embedded_file tosca__embedded_types[] = {
    {"tosca/types/simple_profile.yaml", tosca__types_simple, tosca__types_simple_end},
    {"tosca/types/simple_profile_2_0.yaml", tosca__types_simple_2_0, tosca__types_simple_2_0_end},
    {"tosca/types/orchestrator.yaml", tosca__types_orc, tosca__types_orc_end},
    {NULL, NULL, NULL},
};
