/* The built-in normative type files (see types_embed.c). */
#ifndef TOSCA_TYPES_EMBED_H
#define TOSCA_TYPES_EMBED_H

struct tosca_embedded_file {
    const char *name; /* shown in messages */
    const char *data;
    const char *end;
};

/* Terminated by an entry whose name is NULL. [0] is the Simple Profile
 * (1.x), [1] the TOSCA 2.0 simple profile, [2] this project's own types
 * (GPU compute, jobs, services; 1.x grammar). */
extern const struct tosca_embedded_file tosca__embedded_types[];

#endif
