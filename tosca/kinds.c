/*
 * The one table that maps TOSCA node types to the engine's node kinds
 * (DESIGN.md, docs/tosca.md): the most specific type of the derivation chain
 * that appears in the table decides.
 */
#include <string.h>

#include "internal.h"

static const struct {
    const char *type;
    tosca_node_kind_t kind;
} kind_table[] = {
    /* jobs: run to completion */
    {"orc.nodes.Job", TOSCA_NK_JOB},
    {"tosca.nodes.indigo.Batch.Job", TOSCA_NK_JOB},
    {"tosca.nodes.indigo.Grid.Job", TOSCA_NK_JOB},
    {"tosca.nodes.indigo.Container.Application.Docker.Chronos", TOSCA_NK_JOB},
    {"tosca.nodes.indigo.Qcg.Job", TOSCA_NK_JOB},
    {"tosca.nodes.indigo.Job", TOSCA_NK_JOB},
    {"tosca.nodes.Batch.Job", TOSCA_NK_JOB},
    {"tosca.nodes.Job", TOSCA_NK_JOB},
    /* services: long-running workloads with ports */
    {"orc.nodes.Service", TOSCA_NK_SERVICE},
    {"tosca.nodes.indigo.Container.Application.Docker.Marathon", TOSCA_NK_SERVICE},
    {"tosca.nodes.indigo.DEEPaaScont", TOSCA_NK_SERVICE},
    {"tosca.nodes.Container.Application", TOSCA_NK_SERVICE},
    /* compute: nodes that provide cpus, memory and GPUs */
    {"tosca.nodes.Container.Runtime", TOSCA_NK_COMPUTE},
    {"tosca.nodes.indigo.Compute", TOSCA_NK_COMPUTE},
    {"tosca.nodes.Compute", TOSCA_NK_COMPUTE},
    {"tosca.nodes.Abstract.Compute", TOSCA_NK_COMPUTE},
    /* network and storage */
    {"tosca.nodes.network.Network", TOSCA_NK_NETWORK},
    {"tosca.nodes.network.Port", TOSCA_NK_NETWORK},
    {"tosca.nodes.LoadBalancer", TOSCA_NK_NETWORK},
    {"tosca.nodes.BlockStorage", TOSCA_NK_STORAGE},
    {"tosca.nodes.Storage.BlockStorage", TOSCA_NK_STORAGE},
    {"tosca.nodes.ObjectStorage", TOSCA_NK_STORAGE},
    {"tosca.nodes.Storage.ObjectStorage", TOSCA_NK_STORAGE},
    {"tosca.nodes.Abstract.Storage", TOSCA_NK_STORAGE},
};

tosca_node_kind_t tosca_node_kind_of(const tosca_type_t *t)
{
    for (; t; t = t->parent)
        for (size_t i = 0; i < TOSCA_ARRAY_LEN(kind_table); i++)
            if (strcmp(t->name, kind_table[i].type) == 0)
                return kind_table[i].kind;
    return TOSCA_NK_SOFTWARE;
}

const char *tosca_node_kind_name(tosca_node_kind_t k)
{
    static const char *const names[] = {"SOFTWARE", "COMPUTE", "SERVICE",
                                        "JOB",      "NETWORK", "STORAGE"};
    return (size_t)k < TOSCA_ARRAY_LEN(names) ? names[k] : "SOFTWARE";
}
