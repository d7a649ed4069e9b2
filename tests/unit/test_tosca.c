/*
 * libtosca through its public API: templates loaded from strings with
 * tosca_load_buffer() and checked by their diagnostics (code, line, severity,
 * what the message names). Covers tosca_definitions_version and the
 * top-level keys of each version, type definitions (derived_from, data
 * types, constraints, entry_schema), node templates (properties,
 * capabilities, requirements, relationships, interfaces, artifacts, copy),
 * the other sections of a topology (groups, policies, outputs, substitution
 * mappings, workflows, dependency order) and the intrinsic functions, both
 * their checks at load time and their values in the plan. Imports are in
 * test_tosca_imports.c, the plan itself in test_tosca_plan.c.
 */
#include "tosca_fixture.h"

/* ---- versions and top-level keys ------------------------------------------------ */

static void versions_load(void **state)
{
    static const char *const v1[] = {"tosca_simple_yaml_1_0", "tosca_simple_yaml_1_1",
                                     "tosca_simple_yaml_1_2", "tosca_simple_yaml_1_3"};
    static const char v2[] = V20 "service_template:\n"
                                 "  node_templates:\n"
                                 "    vm:\n"
                                 "      type: tosca.nodes.Compute\n";
    char src[512];
    ld_t l;

    (void)state;
    for (size_t i = 0; i < sizeof(v1) / sizeof(v1[0]); i++) {
        snprintf(src, sizeof(src),
                 "tosca_definitions_version: %s\n"
                 "topology_template:\n"
                 "  node_templates:\n"
                 "    vm:\n"
                 "      type: tosca.nodes.Compute\n",
                 v1[i]);
        load(&l, src);
        EXPECT_CLEAN(&l);
        assert_string_equal(tosca_template_version(l.t), v1[i]);
        unload(&l);
    }
    load(&l, v2);
    EXPECT_CLEAN(&l);
    assert_string_equal(tosca_template_version(l.t), "tosca_2_0");
    unload(&l);
    /* a file of type definitions only */
    load(&l, V13 "description: types only\n");
    EXPECT_CLEAN(&l);
    unload(&l);
}

static void version_missing(void **state)
{
    static const char src[] = "description: no version\n"
                              "topology_template: {}\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "missing-version", 1, "tosca_definitions_version");
    unload(&l);
}

static void version_unknown(void **state)
{
    static const char src[] = "description: x\n"
                              "tosca_definitions_version: tosca_simple_yaml_9_9\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "unknown-version", 2, "tosca_simple_yaml_9_9");
    unload(&l);
    /* not a string */
    load(&l, "tosca_definitions_version: [1, 3]\n");
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "unknown-version", 1, NULL);
    unload(&l);
}

/* service_template is 2.0: a 1.x file that uses it has a defect (and no topology). */
static void service_template_in_1x(void **state)
{
    static const char src[] = V13 "service_template:\n"
                                  "  node_templates: {}\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_OK(&l);
    EXPECT_WARN(&l, "unknown-key", 2, "'service_template' is TOSCA 2.0");
    unload(&l);
    load_mode(&l, src, true);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "unknown-key", 2, "topology_template");
    unload(&l);
    /* and the other way round */
    load(&l, V20 "topology_template:\n"
                 "  node_templates: {}\n");
    EXPECT_WARN(&l, "unknown-key", 4, "topology_template");
    unload(&l);
}

static void unknown_top_level_key(void **state)
{
    static const char src[] = V13 "description: x\n"
                                  "tosca_extensions: {}\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_OK(&l);
    EXPECT_WARN(&l, "unknown-key", 3, "tosca_extensions");
    assert_int_equal(l.d.warnings, 1);
    unload(&l);
    load_mode(&l, src, true);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "unknown-key", 3, "tosca_extensions");
    unload(&l);
}

/* 1.0 allowed template_name & co at the top level; 1.3 has them under metadata. */
static void top_level_template_name(void **state)
{
    ld_t l;

    (void)state;
    load(&l, "tosca_definitions_version: tosca_simple_yaml_1_0\n"
             "template_name: x\n"
             "template_author: y\n"
             "template_version: 1.0.0\n");
    EXPECT_CLEAN(&l);
    unload(&l);
    load(&l, V13 "template_name: x\n");
    EXPECT_WARN(&l, "unknown-key", 2, "template_name");
    unload(&l);
}

/* Interface types: 1.0 lists operations as direct keys, 1.3 under operations:. */
static void interface_operations_1_0_and_1_3(void **state)
{
    static const char v10[] = "tosca_definitions_version: tosca_simple_yaml_1_0\n"
                              "interface_types:\n"
                              "  my.Deploy:\n"
                              "    derived_from: tosca.interfaces.Root\n"
                              "    deploy:\n"
                              "      description: flat operation (1.0)\n"
                              "    undeploy: {}\n"
                              "node_types:\n"
                              "  my.App:\n"
                              "    derived_from: tosca.nodes.Root\n"
                              "    interfaces:\n"
                              "      Deploy:\n"
                              "        type: my.Deploy\n"
                              "topology_template:\n"
                              "  node_templates:\n"
                              "    app:\n"
                              "      type: my.App\n"
                              "      interfaces:\n"
                              "        Deploy:\n"
                              "          deploy: deploy.sh\n"
                              "          redeploy: again.sh\n";
    static const char v13[] = V13 "interface_types:\n"
                                  "  my.Deploy:\n"
                                  "    derived_from: tosca.interfaces.Root\n"
                                  "    operations:\n"
                                  "      deploy:\n"
                                  "        description: nested operation (1.3)\n"
                                  "node_types:\n"
                                  "  my.App:\n"
                                  "    derived_from: tosca.nodes.Root\n"
                                  "    interfaces:\n"
                                  "      Deploy:\n"
                                  "        type: my.Deploy\n"
                                  "topology_template:\n"
                                  "  node_templates:\n"
                                  "    app:\n"
                                  "      type: my.App\n"
                                  "      interfaces:\n"
                                  "        Deploy:\n"
                                  "          operations:\n"
                                  "            deploy: deploy.sh\n"
                                  "            redeploy: again.sh\n";
    ld_t l;

    (void)state;
    load(&l, v10);
    EXPECT_OK(&l);
    EXPECT_WARN(&l, "unknown-operation", line_of(v10, "redeploy"), "redeploy");
    assert_int_equal(l.d.count, 1);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    ASSERT_JSTR(plan_node(&l, "app"), "interfaces.Deploy.deploy.implementation.primary",
                "deploy.sh");
    unload(&l);

    load(&l, v13);
    EXPECT_OK(&l);
    EXPECT_WARN(&l, "unknown-operation", line_of(v13, "redeploy"), "redeploy");
    assert_int_equal(l.d.count, 1);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    ASSERT_JSTR(plan_node(&l, "app"), "interfaces.Deploy.deploy.implementation.primary",
                "deploy.sh");
    unload(&l);
}

/* ---- types ----------------------------------------------------------------------- */

static void derived_from_chain(void **state)
{
    static const char src[] = V13 "node_types:\n"
                                  "  my.A:\n"
                                  "    derived_from: tosca.nodes.SoftwareComponent\n"
                                  "    properties:\n"
                                  "      a: {type: string, default: from-a}\n"
                                  "  my.B:\n"
                                  "    derived_from: my.A\n"
                                  "    properties:\n"
                                  "      b: {type: integer, default: 2}\n"
                                  "  my.C:\n"
                                  "    derived_from: my.B\n"
                                  "    properties:\n"
                                  "      a: {type: string, default: from-c}\n"
                                  "topology_template:\n"
                                  "  node_templates:\n"
                                  "    c:\n"
                                  "      type: my.C\n"
                                  "      properties:\n"
                                  "        b: 3\n";
    ld_t l;
    json_t *n;

    (void)state;
    load(&l, src);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    n = plan_node(&l, "c");
    ASSERT_JEQ(n, "types",
               "[\"my.C\", \"my.B\", \"my.A\", \"tosca.nodes.SoftwareComponent\", "
               "\"tosca.nodes.Root\"]");
    ASSERT_JSTR(n, "properties.a", "from-c"); /* nearest default wins */
    ASSERT_JINT(n, "properties.b", 3);
    ASSERT_JSTR(n, "kind", "SOFTWARE");
    unload(&l);
}

static void derived_from_unknown(void **state)
{
    static const char src[] = V13 "node_types:\n"
                                  "  my.A:\n"
                                  "    derived_from: my.Missing\n"
                                  "data_types:\n"
                                  "  my.D:\n"
                                  "    derived_from: my.NoData\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_FAIL(&l);
    /* at the derived_from line */
    EXPECT_ERR(&l, "unknown-type", line_of(src, "my.Missing"), "my.Missing");
    EXPECT_ERR(&l, "unknown-type", line_of(src, "my.NoData"), "my.NoData");
    unload(&l);
}

static void derivation_cycle(void **state)
{
    static const char src[] = V13 "node_types:\n"
                                  "  my.A:\n"
                                  "    derived_from: my.B\n"
                                  "  my.B:\n"
                                  "    derived_from: my.A\n"
                                  "  my.Self:\n"
                                  "    derived_from: my.Self\n"
                                  "topology_template:\n"
                                  "  node_templates:\n"
                                  "    a:\n"
                                  "      type: my.A\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "derivation-cycle", line_of(src, "my.A:"), "my.A");
    EXPECT_ERR(&l, "derivation-cycle", line_of(src, "derived_from: my.Self"), "itself");
    unload(&l);
}

/* The same type twice in one section is a duplicate YAML key. */
static void duplicate_type(void **state)
{
    static const char src[] = V13 "data_types:\n"
                                  "  my.D:\n"
                                  "    derived_from: string\n"
                                  "  my.D:\n"
                                  "    derived_from: integer\n";
    static const char same[] = V13 "data_types:\n"
                                   "  my.D:\n"
                                   "    derived_from: string\n"
                                   "  my.D:\n"
                                   "    derived_from: string\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "yaml-duplicate-key", 5, "my.D");
    unload(&l);
    load(&l, same); /* the same definition repeated: a defect */
    EXPECT_OK(&l);
    EXPECT_WARN(&l, "yaml-duplicate-key", 5, "my.D");
    unload(&l);
    load_mode(&l, same, true);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "yaml-duplicate-key", 5, "my.D");
    unload(&l);
}

static const char port_types[] = V13 "data_types:\n"
                                     "  my.Port:\n"
                                     "    derived_from: integer\n"
                                     "    constraints:\n"
                                     "      - in_range: [1, 65535]\n"
                                     "  my.LowPort:\n"
                                     "    derived_from: my.Port\n"
                                     "    constraints:\n"
                                     "      - less_than: 1024\n"
                                     "node_types:\n"
                                     "  my.Server:\n"
                                     "    derived_from: tosca.nodes.Root\n"
                                     "    properties:\n"
                                     "      port: {type: my.Port, required: false}\n"
                                     "      admin: {type: my.LowPort, required: false}\n";

static void data_type_from_integer(void **state)
{
    char src[2048];
    ld_t l;

    (void)state;
    snprintf(src, sizeof(src),
             "%stopology_template:\n"
             "  node_templates:\n"
             "    ok:\n"
             "      type: my.Server\n"
             "      properties:\n"
             "        port: 8080\n"
             "        admin: 443\n",
             port_types);
    load(&l, src);
    EXPECT_CLEAN(&l);
    unload(&l);
    snprintf(src, sizeof(src),
             "%stopology_template:\n"
             "  node_templates:\n"
             "    bad:\n"
             "      type: my.Server\n"
             "      properties:\n"
             "        port: 70000\n"
             "        admin: 8443\n"
             "    worse:\n"
             "      type: my.Server\n"
             "      properties:\n"
             "        port: eighty\n"
             "        admin: 0\n",
             port_types);
    load(&l, src);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "constraint-violated", line_of(src, "port: 70000"), "in_range");
    /* the derived type's own constraint, then its parent's */
    EXPECT_ERR(&l, "constraint-violated", line_of(src, "admin: 8443"), "less_than");
    EXPECT_ERR(&l, "type-mismatch", line_of(src, "port: eighty"), "eighty");
    EXPECT_ERR(&l, "constraint-violated", line_of(src, "admin: 0"), "in_range");
    unload(&l);
}

static void property_default_violates_constraint(void **state)
{
    static const char src[] = V13 "data_types:\n"
                                  "  my.Port:\n"
                                  "    derived_from: integer\n"
                                  "    constraints:\n"
                                  "      - in_range: [1, 65535]\n"
                                  "  my.Cfg:\n"
                                  "    properties:\n"
                                  "      port: {type: my.Port, default: 0}\n"
                                  "node_types:\n"
                                  "  my.N:\n"
                                  "    derived_from: tosca.nodes.Root\n"
                                  "    properties:\n"
                                  "      a: {type: integer, default: 0, constraints: [greater_than: 0]}\n"
                                  "      b: {type: string, default: [x]}\n"
                                  "      c: {type: integer, default: 5, constraints: [greater_than: 0]}\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "constraint-violated", line_of(src, "port: {type"), "my.Cfg");
    EXPECT_ERR(&l, "constraint-violated", line_of(src, "a: {type"), "greater_than");
    EXPECT_ERR(&l, "type-mismatch", line_of(src, "b: {type"), "'b'");
    assert_int_equal(l.d.errors, 3);
    unload(&l);
}

/* Regression: the default of a node type property whose type is a data type with constraints is
 * not checked against them when the data type is defined in the same file: node types
 * are resolved before data types (types.c, tosca_types_resolve walks type_list in
 * section order), so my.Port's constraints are not parsed yet. The template value 70000
 * is caught; the default 70000 is not. */
static void node_default_vs_data_type_constraint(void **state)
{
    static const char src[] = V13 "data_types:\n"
                                  "  my.Port:\n"
                                  "    derived_from: integer\n"
                                  "    constraints:\n"
                                  "      - in_range: [1, 65535]\n"
                                  "node_types:\n"
                                  "  my.N:\n"
                                  "    derived_from: tosca.nodes.Root\n"
                                  "    properties:\n"
                                  "      p: {type: my.Port, default: 70000}\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "constraint-violated", line_of(src, "p: {type"), "in_range");
    unload(&l);
}

static const char point_types[] = V13 "data_types:\n"
                                      "  my.Point:\n"
                                      "    derived_from: tosca.datatypes.Root\n"
                                      "    properties:\n"
                                      "      x: {type: integer}\n"
                                      "      y: {type: integer, required: false}\n"
                                      "      label: {type: string, default: origin}\n"
                                      "  my.Shape:\n"
                                      "    properties:\n"
                                      "      centre: {type: my.Point}\n"
                                      "node_types:\n"
                                      "  my.Canvas:\n"
                                      "    derived_from: tosca.nodes.Root\n"
                                      "    properties:\n"
                                      "      p: {type: my.Point, required: false}\n"
                                      "      s: {type: my.Shape, required: false}\n";

static void complex_data_type_fields(void **state)
{
    char src[2048];
    ld_t l;

    (void)state;
    snprintf(src, sizeof(src),
             "%stopology_template:\n"
             "  node_templates:\n"
             "    ok:\n"
             "      type: my.Canvas\n"
             "      properties:\n"
             "        p: {x: 1, y: 2}\n"
             "        s: {centre: {x: 0}}\n",
             point_types);
    load(&l, src);
    EXPECT_CLEAN(&l);
    unload(&l);
    snprintf(src, sizeof(src),
             "%stopology_template:\n"
             "  node_templates:\n"
             "    bad:\n"
             "      type: my.Canvas\n"
             "      properties:\n"
             "        p:\n"
             "          x: 1\n"
             "          zz: 3\n"
             "        s:\n"
             "          centre:\n"
             "            y: not-a-number\n",
             point_types);
    load(&l, src);
    EXPECT_FAIL(&l);
    EXPECT_WARN(&l, "unknown-field", line_of(src, "zz: 3"), "'zz'");
    EXPECT_ERR(&l, "missing-field", line_of(src, "y: not-a-number"), "'x'");
    EXPECT_ERR(&l, "type-mismatch", line_of(src, "y: not-a-number"), "not-a-number");
    unload(&l);
    /* strict: the unknown field is an error too */
    snprintf(src, sizeof(src),
             "%stopology_template:\n"
             "  node_templates:\n"
             "    bad:\n"
             "      type: my.Canvas\n"
             "      properties:\n"
             "        p: {x: 1, zz: 3}\n"
             "        s: [1, 2]\n",
             point_types);
    load_mode(&l, src, true);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "unknown-field", line_of(src, "zz: 3"), "my.Point");
    EXPECT_ERR(&l, "type-mismatch", line_of(src, "s: [1, 2]"), "my.Shape");
    unload(&l);
}

static void entry_schema_lists_and_maps(void **state)
{
    static const char types[] =
        V13 "data_types:\n"
            "  my.Pair:\n"
            "    properties:\n"
            "      k: {type: string}\n"
            "      v: {type: integer}\n"
            "node_types:\n"
            "  my.N:\n"
            "    derived_from: tosca.nodes.Root\n"
            "    properties:\n"
            "      ints: {type: list, required: false, entry_schema: {type: integer}}\n"
            "      sizes: {type: map, required: false, entry_schema: scalar-unit.size}\n"
            "      pairs: {type: list, required: false, entry_schema: {type: my.Pair}}\n"
            "      ranged:\n"
            "        type: list\n"
            "        required: false\n"
            "        entry_schema:\n"
            "          type: integer\n"
            "          constraints: [{less_than: 10}]\n";
    char src[2048];
    ld_t l;

    (void)state;
    snprintf(src, sizeof(src),
             "%stopology_template:\n"
             "  node_templates:\n"
             "    ok:\n"
             "      type: my.N\n"
             "      properties:\n"
             "        ints: [1, 2, 3]\n"
             "        sizes: {a: 1 GB, b: 2 MiB}\n"
             "        pairs: [{k: a, v: 1}]\n"
             "        ranged: [1, 9]\n",
             types);
    load(&l, src);
    EXPECT_CLEAN(&l);
    unload(&l);
    snprintf(src, sizeof(src),
             "%stopology_template:\n"
             "  node_templates:\n"
             "    bad:\n"
             "      type: my.N\n"
             "      properties:\n"
             "        ints:\n"
             "          - 1\n"
             "          - two\n"
             "        sizes:\n"
             "          a: 1 GB\n"
             "          b: lots\n"
             "        pairs:\n"
             "          - {k: a}\n"
             "        ranged: [1, 12]\n",
             types);
    load(&l, src);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "type-mismatch", line_of(src, "- two"), "entry 1");
    EXPECT_ERR(&l, "type-mismatch", line_of(src, "b: lots"), "entry 'b'");
    EXPECT_ERR(&l, "missing-field", line_of(src, "- {k: a}"), "'v'");
    EXPECT_ERR(&l, "constraint-violated", line_of(src, "ranged: [1, 12]"), "less_than");
    unload(&l);
}

/* ---- node templates ---------------------------------------------------------------- */

static void unknown_node_type(void **state)
{
    static const char v1[] = V13 "topology_template:\n"
                                 "  node_templates:\n"
                                 "    a:\n"
                                 "      type: tosca.nodes.Nope\n";
    static const char v2[] = V20 "service_template:\n"
                                 "  node_templates:\n"
                                 "    a:\n"
                                 "      type: tosca.nodes.Nope\n"
                                 "    b:\n"
                                 "      type: my.Thing\n";
    ld_t l;

    (void)state;
    load(&l, v1);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "unknown-type", 5, "tosca.nodes.Nope");
    assert_null(strstr(EXPECT_ERR(&l, "unknown-type", 5, NULL)->message, "import the profile"));
    unload(&l);
    load(&l, v2);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "unknown-type", 7, "import the profile org.oasis-open.tosca.simple:2.0");
    /* no hint for a name that is not normative */
    assert_null(strstr(EXPECT_ERR(&l, "unknown-type", 9, "my.Thing")->message, "profile"));
    unload(&l);
}

/* Regression: TOSCA 2.0 imports nothing implicitly (docs/tosca-versions.md section 3, and the
 * hint in topology.c), yet a 2.0 file that does not import the profile resolves
 * tosca.nodes.Compute: tosca_scope_find() falls back to the 2.0 profile for every 2.0
 * file (loader.c, tosca_builtin_for), so the hint can only show for names that are not
 * in the profile at all. */
static void v2_normative_without_profile(void **state)
{
    static const char src[] = "tosca_definitions_version: tosca_2_0\n"
                              "service_template:\n"
                              "  node_templates:\n"
                              "    vm:\n"
                              "      type: tosca.nodes.Compute\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "unknown-type", 5, "import the profile");
    unload(&l);
}

static const char app_type[] =
    V13 "node_types:\n"
        "  my.App:\n"
        "    derived_from: tosca.nodes.SoftwareComponent\n"
        "    properties:\n"
        "      name: {type: string}\n"
        "      eq: {type: integer, required: false, constraints: [equal: 1]}\n"
        "      gt: {type: integer, required: false, constraints: [greater_than: 1]}\n"
        "      ge: {type: integer, required: false, constraints: [greater_or_equal: 1]}\n"
        "      lt: {type: integer, required: false, constraints: [less_than: 1]}\n"
        "      le: {type: integer, required: false, constraints: [less_or_equal: 1]}\n"
        "      ir: {type: scalar-unit.size, required: false, constraints: [in_range: [1 GB, 2 GB]]}\n"
        "      vv: {type: string, required: false, constraints: [valid_values: [a, b]]}\n"
        "      ln: {type: string, required: false, constraints: [length: 2]}\n"
        "      mn: {type: list, required: false, constraints: [min_length: 2]}\n"
        "      mx: {type: map, required: false, constraints: [max_length: 1]}\n"
        "      pt: {type: string, required: false, constraints: [pattern: \"^[a-z]+$\"]}\n";

static void unknown_and_missing_property(void **state)
{
    char src[3072];
    ld_t l;

    (void)state;
    snprintf(src, sizeof(src),
             "%stopology_template:\n"
             "  node_templates:\n"
             "    vm:\n"
             "      type: tosca.nodes.Compute\n"
             "    app:\n"
             "      type: my.App\n"
             "      properties:\n"
             "        name: x\n"
             "        colour: blue\n"
             "      requirements:\n"
             "        - host: vm\n"
             "    app2:\n"
             "      type: my.App\n"
             "      requirements:\n"
             "        - host: vm\n",
             app_type);
    load(&l, src);
    EXPECT_OK(&l);
    EXPECT_WARN(&l, "unknown-property", line_of(src, "colour: blue"), "'colour'");
    EXPECT_WARN(&l, "missing-property", line_of(src, "app2:"), "'name'");
    assert_int_equal(l.d.count, 2);
    unload(&l);
    load_mode(&l, src, true);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "unknown-property", line_of(src, "colour: blue"), "my.App");
    EXPECT_ERR(&l, "missing-property", line_of(src, "app2:"), "'name'");
    unload(&l);
}

/* Every constraint operator through a node template: first values that hold, then
 * values that violate each one (its line and its operator). */
static void constraint_operators(void **state)
{
    static const struct {
        const char *prop, *good, *bad, *op;
    } cases[] = {
        {"eq", "1", "2", "equal"},
        {"gt", "2", "1", "greater_than"},
        {"ge", "1", "0", "greater_or_equal"},
        {"lt", "0", "1", "less_than"},
        {"le", "1", "2", "less_or_equal"},
        {"ir", "1500 MB", "3 GB", "in_range"},
        {"vv", "b", "c", "valid_values"},
        {"ln", "ab", "abc", "length"},
        {"mn", "[1, 2]", "[1]", "min_length"},
        {"mx", "{a: 1}", "{a: 1, b: 2}", "max_length"},
        {"pt", "abc", "A1", "pattern"},
    };
    char src[4096], line[128];
    ld_t l;

    (void)state;
    for (int bad = 0; bad < 2; bad++) {
        int n = snprintf(src, sizeof(src),
                         "%stopology_template:\n"
                         "  node_templates:\n"
                         "    vm:\n"
                         "      type: tosca.nodes.Compute\n"
                         "    app:\n"
                         "      type: my.App\n"
                         "      requirements:\n"
                         "        - host: vm\n"
                         "      properties:\n"
                         "        name: x\n",
                         app_type);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
            n += snprintf(src + n, sizeof(src) - (size_t)n, "        %s: %s\n", cases[i].prop,
                          bad ? cases[i].bad : cases[i].good);
        load(&l, src);
        if (!bad) {
            EXPECT_CLEAN(&l);
        } else {
            EXPECT_FAIL(&l);
            for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                snprintf(line, sizeof(line), "        %s: %s\n", cases[i].prop, cases[i].bad);
                EXPECT_ERR(&l, "constraint-violated", line_of(src, line), cases[i].op);
            }
            assert_int_equal(l.d.count, sizeof(cases) / sizeof(cases[0]));
        }
        unload(&l);
    }
}

static void capability_assignments(void **state)
{
    static const char src[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    vm:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "      capabilities:\n"
                                  "        host:\n"
                                  "          properties:\n"
                                  "            num_cpus: 2\n"
                                  "            mem_size: 4 GB\n"
                                  "        os:\n"
                                  "          properties:\n"
                                  "            type: linux\n"
                                  "            version: 22.04\n";
    static const char bad[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    vm:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "      capabilities:\n"
                                  "        host:\n"
                                  "          properties:\n"
                                  "            num_cpus: 0\n"
                                  "            mem_size: much\n"
                                  "            speed: 3\n"
                                  "        gpu:\n"
                                  "          properties: {}\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_CLEAN(&l);
    unload(&l);
    load(&l, bad);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "constraint-violated", line_of(bad, "num_cpus: 0"), "greater_or_equal");
    EXPECT_ERR(&l, "type-mismatch", line_of(bad, "mem_size: much"), "scalar-unit.size");
    EXPECT_WARN(&l, "unknown-property", line_of(bad, "speed: 3"), "tosca.capabilities.Compute");
    EXPECT_WARN(&l, "unknown-capability", line_of(bad, "gpu:"), "'gpu'");
    unload(&l);
}

static void requirement_by_node_name(void **state)
{
    static const char src[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    app:\n"
                                  "      type: tosca.nodes.SoftwareComponent\n"
                                  "      requirements:\n"
                                  "        - host: vm\n"
                                  "    vm:\n"
                                  "      type: tosca.nodes.Compute\n";
    ld_t l;
    json_t *n;

    (void)state;
    load(&l, src);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    n = plan_node(&l, "app");
    ASSERT_JSTR(n, "requirements.0.name", "host");
    ASSERT_JSTR(n, "requirements.0.node", "vm");
    ASSERT_JSTR(n, "requirements.0.capability", "host");
    ASSERT_JSTR(n, "requirements.0.relationship", "tosca.relationships.HostedOn");
    ASSERT_JSTR(n, "host", "vm");
    unload(&l);
}

/* A requirement that names a node type is abstract: a template of that type fulfils it. */
static void requirement_by_node_type(void **state)
{
    static const char src[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    app:\n"
                                  "      type: tosca.nodes.SoftwareComponent\n"
                                  "      requirements:\n"
                                  "        - host: tosca.nodes.Compute\n"
                                  "    app2:\n"
                                  "      type: tosca.nodes.SoftwareComponent\n"
                                  "      requirements:\n"
                                  "        - host:\n"
                                  "            capability: tosca.capabilities.Compute\n"
                                  "    gpu:\n"
                                  "      type: orc.nodes.GPUCompute\n";
    static const char none[] = V13 "topology_template:\n"
                                   "  node_templates:\n"
                                   "    app:\n"
                                   "      type: tosca.nodes.SoftwareComponent\n"
                                   "      requirements:\n"
                                   "        - host: tosca.nodes.Compute\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    ASSERT_JSTR(plan_node(&l, "app"), "requirements.0.node", "gpu");
    ASSERT_JSTR(plan_node(&l, "app"), "host", "gpu");
    /* without a node: the definition's node type (tosca.nodes.Compute) is looked for */
    ASSERT_JSTR(plan_node(&l, "app2"), "host", "gpu");
    ASSERT_JEQ(l.plan, "order", "[\"gpu\", \"app\", \"app2\"]");
    unload(&l);
    /* nothing of that type: it stays open for the orchestrator to fulfil */
    load(&l, none);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    ASSERT_JEQ(plan_node(&l, "app"), "requirements.0.unresolved", "true");
    ASSERT_JSTR(plan_node(&l, "app"), "requirements.0.node", "tosca.nodes.Compute");
    unload(&l);
}

static void requirement_unknown_target(void **state)
{
    static const char src[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    app:\n"
                                  "      type: tosca.nodes.SoftwareComponent\n"
                                  "      requirements:\n"
                                  "        - host: nowhere\n"
                                  "        - dependency:\n"
                                  "            node: nobody\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "unknown-node", 7, "'nowhere'");
    EXPECT_ERR(&l, "unknown-node", 8, "'nobody'");
    unload(&l);
}

static void requirement_capability_mismatch(void **state)
{
    static const char src[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    net:\n"
                                  "      type: tosca.nodes.network.Network\n"
                                  "    app:\n"
                                  "      type: tosca.nodes.SoftwareComponent\n"
                                  "      requirements:\n"
                                  "        - host: net\n"
                                  "        - dependency:\n"
                                  "            node: net\n"
                                  "            capability: tosca.capabilities.Endpoint\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_OK(&l);
    EXPECT_WARN(&l, "capability-mismatch", 9, "tosca.capabilities.Compute");
    EXPECT_WARN(&l, "capability-mismatch", 10, "tosca.capabilities.Endpoint");
    unload(&l);
    load_mode(&l, src, true);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "capability-mismatch", 9, "'net'");
    unload(&l);
}

static void requirement_relationships(void **state)
{
    static const char src[] = V13 "relationship_types:\n"
                                  "  my.Uses:\n"
                                  "    derived_from: tosca.relationships.DependsOn\n"
                                  "    properties:\n"
                                  "      weight: {type: integer, required: false}\n"
                                  "topology_template:\n"
                                  "  relationship_templates:\n"
                                  "    heavy:\n"
                                  "      type: my.Uses\n"
                                  "      properties:\n"
                                  "        weight: 10\n"
                                  "  node_templates:\n"
                                  "    db:\n"
                                  "      type: tosca.nodes.Root\n"
                                  "    app:\n"
                                  "      type: tosca.nodes.Root\n"
                                  "      requirements:\n"
                                  "        - dependency:\n"
                                  "            node: db\n"
                                  "            relationship: my.Uses\n"
                                  "        - dependency:\n"
                                  "            node: db\n"
                                  "            relationship: heavy\n"
                                  "        - dependency:\n"
                                  "            node: db\n"
                                  "            relationship:\n"
                                  "              type: my.Uses\n"
                                  "              properties:\n"
                                  "                weight: 1\n";
    static const char bad[] = V13 "topology_template:\n"
                                  "  relationship_templates:\n"
                                  "    r:\n"
                                  "      type: my.NoRel\n"
                                  "  node_templates:\n"
                                  "    db:\n"
                                  "      type: tosca.nodes.Root\n"
                                  "    app:\n"
                                  "      type: tosca.nodes.Root\n"
                                  "      requirements:\n"
                                  "        - dependency:\n"
                                  "            node: db\n"
                                  "            relationship: my.Unknown\n";
    ld_t l;
    json_t *n;

    (void)state;
    load(&l, src);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    n = plan_node(&l, "app");
    ASSERT_JSTR(n, "requirements.0.relationship", "my.Uses");
    ASSERT_JSTR(n, "requirements.1.relationship", "my.Uses");
    ASSERT_JSTR(n, "requirements.2.relationship", "my.Uses");
    ASSERT_JINT(n, "requirements.2.properties.weight", 1);
    ASSERT_JEQ(n, "depends_on", "[\"db\"]");
    unload(&l);
    load(&l, bad);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "unknown-type", line_of(bad, "    r:"), "my.NoRel");
    EXPECT_ERR(&l, "unknown-type", line_of(bad, "relationship: my.Unknown"), "my.Unknown");
    unload(&l);
}

static void requirement_occurrences(void **state)
{
    static const char src[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    vm1:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "    vm2:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "    app:\n"
                                  "      type: tosca.nodes.SoftwareComponent\n"
                                  "      requirements:\n"
                                  "        - dependency: vm1\n"
                                  "        - host: vm1\n"
                                  "        - dependency: vm2\n"
                                  "        - host: vm2\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_OK(&l);
    /* host allows one; dependency [0, UNBOUNDED] any number */
    EXPECT_WARN(&l, "occurrences", line_of(src, "- host: vm1"), "2 times");
    assert_int_equal(count_code(&l.d, "occurrences"), 1);
    unload(&l);
    load_mode(&l, src, true);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "occurrences", line_of(src, "- host: vm1"), "'host'");
    unload(&l);
}

static void requirement_unknown_name(void **state)
{
    static const char src[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    vm:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "    app:\n"
                                  "      type: tosca.nodes.SoftwareComponent\n"
                                  "      requirements:\n"
                                  "        - host: vm\n"
                                  "        - runs_on: vm\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_OK(&l);
    EXPECT_WARN(&l, "unknown-requirement", 10, "'runs_on'");
    unload(&l);
    load_mode(&l, src, true);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "unknown-requirement", 10, "tosca.nodes.SoftwareComponent");
    unload(&l);
}

static void interfaces_and_operations(void **state)
{
    static const char src[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    app:\n"
                                  "      type: tosca.nodes.Root\n"
                                  "      interfaces:\n"
                                  "        Standard:\n"
                                  "          inputs:\n"
                                  "            verbose: true\n"
                                  "          create: create.sh\n"
                                  "          configure:\n"
                                  "            implementation: configure.sh\n"
                                  "            inputs:\n"
                                  "              level: 2\n"
                                  "          operations:\n"
                                  "            start: start.sh\n";
    static const char bad[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    app:\n"
                                  "      type: tosca.nodes.Root\n"
                                  "      interfaces:\n"
                                  "        Standard:\n"
                                  "          create: create.sh\n"
                                  "          explode: boom.sh\n"
                                  "          operations:\n"
                                  "            implode: boom.sh\n"
                                  "        Backup:\n"
                                  "          run: backup.sh\n"
                                  "        Standard2: oops\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_CLEAN(&l);
    unload(&l);
    load(&l, bad);
    EXPECT_OK(&l);
    EXPECT_WARN(&l, "unknown-operation", line_of(bad, "explode:"), "'explode'");
    EXPECT_WARN(&l, "unknown-operation", line_of(bad, "implode:"), "'implode'");
    EXPECT_WARN(&l, "unknown-interface", line_of(bad, "Backup:"), "'Backup'");
    EXPECT_WARN(&l, "unknown-interface", line_of(bad, "Standard2:"), "'Standard2'");
    unload(&l);
    load_mode(&l, bad, true);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "unknown-operation", line_of(bad, "explode:"), "Standard");
    unload(&l);
}

static void artifacts(void **state)
{
    static const char src[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    app:\n"
                                  "      type: tosca.nodes.Root\n"
                                  "      artifacts:\n"
                                  "        image:\n"
                                  "          type: tosca.artifacts.Deployment.Image.VM\n"
                                  "          file: disk.qcow2\n"
                                  "        script: install.sh\n";
    static const char bad[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    app:\n"
                                  "      type: tosca.nodes.Root\n"
                                  "      artifacts:\n"
                                  "        image:\n"
                                  "          type: my.NoArtifact\n"
                                  "          file: disk.qcow2\n"
                                  "        nofile:\n"
                                  "          type: tosca.artifacts.File\n";
    ld_t l;
    json_t *n;

    (void)state;
    load(&l, src);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    n = plan_node(&l, "app");
    ASSERT_JSTR(n, "artifacts.image.file", "disk.qcow2");
    ASSERT_JSTR(n, "artifacts.image.type", "tosca.artifacts.Deployment.Image.VM");
    ASSERT_JSTR(n, "artifacts.script.file", "install.sh");
    unload(&l);
    load(&l, bad);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "unknown-type", line_of(bad, "type: my.NoArtifact"), "my.NoArtifact");
    EXPECT_ERR(&l, "bad-artifact", line_of(bad, "type: tosca.artifacts.File"), "'nofile'");
    unload(&l);
}

static void copy_node(void **state)
{
    static const char src[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    vm1:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "      capabilities:\n"
                                  "        host:\n"
                                  "          properties:\n"
                                  "            num_cpus: 4\n"
                                  "    vm2:\n"
                                  "      copy: vm1\n"
                                  "    vm3:\n"
                                  "      copy: vm1\n"
                                  "      capabilities:\n"
                                  "        host:\n"
                                  "          properties:\n"
                                  "            num_cpus: 8\n";
    static const char bad[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    vm1:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "    vm2:\n"
                                  "      copy: vm1\n"
                                  "    vm3:\n"
                                  "      copy: vm2\n"
                                  "    vm4:\n"
                                  "      copy: ghost\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    ASSERT_JSTR(plan_node(&l, "vm2"), "type", "tosca.nodes.Compute");
    ASSERT_JINT(plan_node(&l, "vm2"), "compute.num_cpus", 4);
    ASSERT_JINT(plan_node(&l, "vm3"), "compute.num_cpus", 8); /* its own keys win */
    unload(&l);
    load(&l, bad);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "bad-copy", line_of(bad, "copy: vm2"), "'vm2'");
    EXPECT_ERR(&l, "unknown-node", line_of(bad, "copy: ghost"), "'ghost'");
    unload(&l);
}

static void dependency_cycle(void **state)
{
    static const char src[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    free:\n"
                                  "      type: tosca.nodes.Root\n"
                                  "    a:\n"
                                  "      type: tosca.nodes.Root\n"
                                  "      requirements:\n"
                                  "        - dependency: b\n"
                                  "    b:\n"
                                  "      type: tosca.nodes.Root\n"
                                  "      requirements:\n"
                                  "        - dependency: c\n"
                                  "    c:\n"
                                  "      type: tosca.nodes.Root\n"
                                  "      requirements:\n"
                                  "        - dependency: a\n"
                                  "        - dependency: free\n";
    ld_t l;
    const tosca_diag_t *g;

    (void)state;
    load(&l, src);
    EXPECT_FAIL(&l);
    g = EXPECT_ERR(&l, "dependency-cycle", line_of(src, "    a:"), "'a', 'b', 'c'");
    assert_null(strstr(g->message, "free"));
    assert_int_equal(count_code(&l.d, "dependency-cycle"), 1);
    unload(&l);
    /* a node that depends on itself is not a cycle */
    load(&l, V13 "topology_template:\n"
                 "  node_templates:\n"
                 "    a:\n"
                 "      type: tosca.nodes.Root\n"
                 "      requirements:\n"
                 "        - dependency: a\n");
    EXPECT_CLEAN(&l);
    unload(&l);
}

/* A node hosted on itself is refused (by the requirement's name or its HostedOn
 * relationship), where it stands; the engine could not run it. */
static void self_host(void **state)
{
    static const char by_name[] = V13 "topology_template:\n"
                                      "  node_templates:\n"
                                      "    vm:\n"
                                      "      type: tosca.nodes.Compute\n"
                                      "      requirements:\n"
                                      "        - host: vm\n";
    static const char by_rel[] = V13 "topology_template:\n"
                                     "  node_templates:\n"
                                     "    app:\n"
                                     "      type: tosca.nodes.SoftwareComponent\n"
                                     "      requirements:\n"
                                     "        - runs_on:\n"
                                     "            node: app\n"
                                     "            relationship: tosca.relationships.HostedOn\n";
    ld_t l;

    (void)state;
    load(&l, by_name);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "self-host", line_of(by_name, "        - host: vm"), "'host'");
    unload(&l);
    load(&l, by_rel);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "self-host", line_of(by_rel, "        - runs_on:"), "'runs_on'");
    unload(&l);
}

static void empty_node_name(void **state)
{
    static const char src[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    \"\":\n"
                                  "      type: tosca.nodes.Compute\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "bad-name", line_of(src, "    \"\":"), "empty");
    unload(&l);
}

static void groups_and_policies(void **state)
{
    static const char src[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    a:\n"
                                  "      type: tosca.nodes.Root\n"
                                  "    b:\n"
                                  "      type: tosca.nodes.Root\n"
                                  "  groups:\n"
                                  "    g:\n"
                                  "      type: tosca.groups.Root\n"
                                  "      members: [a, b]\n"
                                  "  policies:\n"
                                  "    - place:\n"
                                  "        type: tosca.policies.Placement\n"
                                  "        targets: [g, a]\n";
    static const char bad[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    a:\n"
                                  "      type: tosca.nodes.Root\n"
                                  "  groups:\n"
                                  "    g:\n"
                                  "      type: tosca.groups.Root\n"
                                  "      members: [a, ghost]\n"
                                  "    h:\n"
                                  "      type: my.NoGroup\n"
                                  "  policies:\n"
                                  "    - place:\n"
                                  "        type: tosca.policies.Placement\n"
                                  "        targets:\n"
                                  "          - g\n"
                                  "          - phantom\n"
                                  "    - scale:\n"
                                  "        type: my.NoPolicy\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    ASSERT_JEQ(l.plan, "groups.0.members", "[\"a\", \"b\"]");
    ASSERT_JEQ(l.plan, "policies.0.targets", "[\"g\", \"a\"]");
    ASSERT_JSTR(l.plan, "policies.0.type", "tosca.policies.Placement");
    unload(&l);
    load(&l, bad);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "unknown-node", line_of(bad, "members: [a, ghost]"), "'ghost'");
    EXPECT_ERR(&l, "unknown-type", line_of(bad, "    h:"), "my.NoGroup");
    EXPECT_ERR(&l, "unknown-node", line_of(bad, "- phantom"), "'phantom'");
    EXPECT_ERR(&l, "unknown-type", line_of(bad, "- scale:"), "my.NoPolicy");
    unload(&l);
}

static void outputs_without_value(void **state)
{
    static const char src[] = V13 "topology_template:\n"
                                  "  outputs:\n"
                                  "    ok:\n"
                                  "      value: 1\n"
                                  "    empty:\n"
                                  "      description: nothing here\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_OK(&l);
    EXPECT_WARN(&l, "missing-key", line_of(src, "empty:"), "'empty'");
    unload(&l);
    load_mode(&l, src, true);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "missing-key", line_of(src, "empty:"), "'empty'");
    unload(&l);
    load(&l, V13 "topology_template:\n"
                 "  outputs:\n"
                 "    o: 42\n");
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "expected-map", 4, "'o'");
    unload(&l);
}

static void substitution_mappings(void **state)
{
    static const char src[] = V13 "node_types:\n"
                                  "  my.Service:\n"
                                  "    derived_from: tosca.nodes.Root\n"
                                  "topology_template:\n"
                                  "  node_templates:\n"
                                  "    vm:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "  substitution_mappings:\n"
                                  "    node_type: my.Service\n"
                                  "    capabilities:\n"
                                  "      feature: [vm, feature]\n"
                                  "    requirements:\n"
                                  "      dependency: [vm, dependency]\n";
    static const char bad[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    vm:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "  substitution_mappings:\n"
                                  "    node_type: my.NoService\n"
                                  "    capabilities:\n"
                                  "      feature: [ghost, feature]\n"
                                  "      short: [vm]\n"
                                  "    requirements:\n"
                                  "      dependency: [phantom, dependency]\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    ASSERT_JSTR(l.plan, "substitution_mappings.node_type", "my.Service");
    unload(&l);
    load(&l, bad);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "unknown-type", line_of(bad, "my.NoService"), "my.NoService");
    EXPECT_ERR(&l, "unknown-node", line_of(bad, "[ghost"), "'ghost'");
    EXPECT_ERR(&l, "bad-substitution", line_of(bad, "short:"), "'short'");
    EXPECT_ERR(&l, "unknown-node", line_of(bad, "[phantom"), "'phantom'");
    unload(&l);
    load(&l, V13 "topology_template:\n"
                 "  substitution_mappings:\n"
                 "    capabilities: {}\n");
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "missing-key", 4, "node_type");
    unload(&l);
}

static void workflows(void **state)
{
    static const char src[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    a:\n"
                                  "      type: tosca.nodes.Root\n"
                                  "  groups:\n"
                                  "    g:\n"
                                  "      type: tosca.groups.Root\n"
                                  "      members: [a]\n"
                                  "  workflows:\n"
                                  "    deploy:\n"
                                  "      steps:\n"
                                  "        one:\n"
                                  "          target: a\n"
                                  "          on_success: [two]\n"
                                  "        two:\n"
                                  "          target: g\n"
                                  "          on_failure: one\n";
    static const char bad[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    a:\n"
                                  "      type: tosca.nodes.Root\n"
                                  "  workflows:\n"
                                  "    deploy:\n"
                                  "      steps:\n"
                                  "        one:\n"
                                  "          target: nobody\n"
                                  "          on_success:\n"
                                  "            - two\n"
                                  "            - three\n"
                                  "        two:\n"
                                  "          target: a\n"
                                  "          on_failure: four\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    ASSERT_JSTR(l.plan, "workflows.deploy.steps.one.target", "a");
    unload(&l);
    load(&l, bad);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "unknown-node", line_of(bad, "target: nobody"), "'nobody'");
    EXPECT_ERR(&l, "unknown-step", line_of(bad, "- three"), "'three'");
    EXPECT_ERR(&l, "unknown-step", line_of(bad, "on_failure: four"), "'four'");
    assert_int_equal(count_code(&l.d, "unknown-step"), 2);
    unload(&l);
}

/* ---- functions ----------------------------------------------------------------------- */

static void function_checks(void **state)
{
    static const char bad[] = V13 "topology_template:\n"
                                  "  inputs:\n"
                                  "    cpus: {type: integer, default: 1}\n"
                                  "  node_templates:\n"
                                  "    vm:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "      capabilities:\n"
                                  "        host:\n"
                                  "          properties:\n"
                                  "            num_cpus:\n"
                                  "              get_input: nope\n"
                                  "  outputs:\n"
                                  "    a: { value: { get_input: [ nope2 ] } }\n"
                                  "    b: { value: { get_property: [ SELF, x ] } }\n"
                                  "    c: { value: { get_property: [ ghost, x ] } }\n"
                                  "    d: { value: { token: [ a, b ] } }\n"
                                  "    e: { value: { concat: a } }\n"
                                  "    f: { value: { get_property: [ vm, nosuch ] } }\n"
                                  "    g: { value: { get_input: cpus } }\n";
    ld_t l;

    (void)state;
    load(&l, bad);
    EXPECT_FAIL(&l);
    /* get_input: at the line of the input's name */
    EXPECT_ERR(&l, "unknown-input", line_of(bad, "get_input: nope"), "'nope'");
    EXPECT_ERR(&l, "unknown-input", line_of(bad, "nope2"), "'nope2'");
    EXPECT_ERR(&l, "bad-function", line_of(bad, "SELF, x"), "SELF");
    EXPECT_ERR(&l, "unknown-node", line_of(bad, "ghost"), "'ghost'");
    EXPECT_ERR(&l, "bad-function", line_of(bad, "token:"), "token");
    EXPECT_ERR(&l, "bad-function", line_of(bad, "concat: a"), "concat");
    EXPECT_WARN(&l, "unknown-property", line_of(bad, "nosuch"), "'nosuch'");
    assert_int_equal(l.d.errors, 6);
    unload(&l);
}

static const char fn_types[] =
    V13 "node_types:\n"
        "  my.Box:\n"
        "    derived_from: tosca.nodes.SoftwareComponent\n"
        "    properties:\n"
        "      zone: {type: string, default: eu-1}\n"
        "    capabilities:\n"
        "      host: tosca.capabilities.Compute\n"
        "  my.Mid:\n"
        "    derived_from: tosca.nodes.SoftwareComponent\n"
        "    capabilities:\n"
        "      host: tosca.capabilities.Compute\n"
        "  my.App:\n"
        "    derived_from: tosca.nodes.SoftwareComponent\n"
        "    properties:\n"
        "      port: {type: integer, default: 8080}\n"
        "      ports: {type: list, entry_schema: integer, default: [10, 20, 30]}\n"
        "      nested: {type: map, default: {a: {b: [x, y]}}}\n"
        "      out: {type: map, required: false}\n";

/* Function values in the plan: static ones computed, run-time ones deferred. */
static void function_values(void **state)
{
    char src[4096];
    ld_t l;
    json_t *n;

    (void)state;
    snprintf(src, sizeof(src),
             "%stopology_template:\n"
             "  inputs:\n"
             "    user: {type: string, default: bob}\n"
             "    tags: {type: list, default: [p, q]}\n"
             "  node_templates:\n"
             "    vm:\n"
             "      type: tosca.nodes.Compute\n"
             "      capabilities:\n"
             "        host:\n"
             "          properties:\n"
             "            num_cpus: 4\n"
             "    box:\n"
             "      type: my.Box\n"
             "      requirements:\n"
             "        - host: vm\n"
             "    mid:\n"
             "      type: my.Mid\n"
             "      requirements:\n"
             "        - host: box\n"
             "    app:\n"
             "      type: my.App\n"
             "      requirements:\n"
             "        - host: mid\n"
             "      properties:\n"
             "        out:\n"
             "          self_port: { get_property: [ SELF, port ] }\n"
             "          host_zone: { get_property: [ HOST, zone ] }\n"
             "          host_cpus: { get_property: [ HOST, host, num_cpus ] }\n"
             "          named: { get_property: [ box, zone ] }\n"
             "          cap: { get_property: [ vm, host, num_cpus ] }\n"
             "          index: { get_property: [ SELF, ports, 1 ] }\n"
             "          deep: { get_property: [ SELF, nested, a, b, 1 ] }\n"
             "          input_index: { get_input: [ tags, 1 ] }\n"
             "          attr: { get_attribute: [ SELF, tosca_id ] }\n"
             "          host_attr: { get_attribute: [ HOST, state ] }\n"
             "          url: { concat: [ \"http://\", { get_input: user }, \":\", "
             "{ get_property: [ SELF, port ] } ] }\n"
             "          later: { concat: [ \"http://\", { get_attribute: [ vm, public_address ] } ] }\n"
             "          joined: { join: [ [ a, b, c ], \"-\" ] }\n"
             "          joined_plain: { join: [ [ a, b ] ] }\n"
             "          tok: { token: [ \"x.y.z\", \".\", 1 ] }\n"
             "          op: { get_operation_output: [ SELF, Standard, create, result ] }\n",
             fn_types);
    load(&l, src);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    n = plan_node(&l, "app");
    ASSERT_JINT(n, "properties.out.self_port", 8080);
    ASSERT_JSTR(n, "properties.out.host_zone", "eu-1"); /* mid has no zone: box has */
    ASSERT_JINT(n, "properties.out.host_cpus", 4);      /* up to vm's capability */
    ASSERT_JSTR(n, "properties.out.named", "eu-1");
    ASSERT_JINT(n, "properties.out.cap", 4);
    ASSERT_JINT(n, "properties.out.index", 20);
    ASSERT_JSTR(n, "properties.out.deep", "y");
    ASSERT_JSTR(n, "properties.out.input_index", "q");
    ASSERT_JEQ(n, "properties.out.attr", "{\"get_attribute\": [\"app\", \"tosca_id\"]}");
    ASSERT_JEQ(n, "properties.out.host_attr", "{\"get_attribute\": [\"mid\", \"state\"]}");
    ASSERT_JSTR(n, "properties.out.url", "http://bob:8080");
    ASSERT_JEQ(n, "properties.out.later",
               "{\"concat\": [\"http://\", {\"get_attribute\": [\"vm\", \"public_address\"]}]}");
    ASSERT_JSTR(n, "properties.out.joined", "a-b-c");
    ASSERT_JSTR(n, "properties.out.joined_plain", "ab");
    ASSERT_JSTR(n, "properties.out.tok", "y");
    ASSERT_JEQ(n, "properties.out.op",
               "{\"get_operation_output\": [\"app\", \"Standard\", \"create\", \"result\"]}");
    ASSERT_JEQ(n, "deferred", "true");
    ASSERT_JEQ(plan_node(&l, "box"), "deferred", "false");
    ASSERT_JEQ(n, "host_chain", "[\"mid\", \"box\", \"vm\"]");
    unload(&l);
}

static void function_values_v2(void **state)
{
    static const char src[] = V20 "service_template:\n"
                                  "  inputs:\n"
                                  "    cpus: {type: integer, default: 2}\n"
                                  "    unit: {type: string, default: GB}\n"
                                  "  node_templates:\n"
                                  "    vm:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "      capabilities:\n"
                                  "        host:\n"
                                  "          properties:\n"
                                  "            num_cpus: { $get_input: cpus }\n"
                                  "            mem_size: { $concat: [ \"4 \", { $get_input: unit } ] }\n"
                                  "  outputs:\n"
                                  "    ip: { value: { $get_attribute: [ vm, public_address ] } }\n"
                                  "    bad: { value: { $get_input: missing } }\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "unknown-input", line_of(src, "missing"), "'missing'");
    unload(&l);
    {
        char ok[1024];
        snprintf(ok, sizeof(ok), "%.*s", (int)(strstr(src, "    bad:") - src), src);
        load(&l, ok);
    }
    EXPECT_CLEAN(&l);
    plan_with(&l, "{\"cpus\": 3}");
    assert_int_equal(l.plan_rc, 0);
    ASSERT_JINT(plan_node(&l, "vm"), "compute.num_cpus", 3);
    ASSERT_JINT(plan_node(&l, "vm"), "compute.mem_size", 4000000000);
    ASSERT_JEQ(l.plan, "outputs.ip.value", "{\"$get_attribute\": [\"vm\", \"public_address\"]}");
    ASSERT_JEQ(l.plan, "outputs.ip.deferred", "true");
    unload(&l);
}

static const char cycle_src[] = V13 "node_types:\n"
                                    "  my.N:\n"
                                    "    derived_from: tosca.nodes.Root\n"
                                    "    properties:\n"
                                    "      x: {type: string, required: false}\n"
                                    "      y: {type: string, required: false}\n"
                                    "topology_template:\n"
                                    "  node_templates:\n"
                                    "    a:\n"
                                    "      type: my.N\n"
                                    "      properties:\n"
                                    "        x: { get_property: [ b, y ] }\n"
                                    "    b:\n"
                                    "      type: my.N\n"
                                    "      properties:\n"
                                    "        y: { get_property: [ a, x ] }\n";

static void function_cycle(void **state)
{
    ld_t l;

    (void)state;
    load(&l, cycle_src);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, ORC_ETOSCA);
    /* reported once, where the cycle closes; evaluation stops at the first error */
    EXPECT_ERR(&l, "function-cycle", line_of(cycle_src, "x: { get_property"), "get_property cycle");
    unload(&l);
}

/* Regression: a property that refers to itself twice (concat of two get_property calls) is
 * evaluated 2^16 times before the depth limit stops each branch, and every branch adds a
 * function-cycle error: 65,536 diagnostics (all but 1,000 dropped). With three
 * references it takes seconds (3^16 evaluations), with four hours: a small template can
 * hang the planner. The cycle should be found once and reported once. */
static void function_cycle_blowup(void **state)
{
    static const char src[] = V13 "node_types:\n"
                                  "  my.N:\n"
                                  "    derived_from: tosca.nodes.Root\n"
                                  "    properties:\n"
                                  "      x: {type: string, required: false}\n"
                                  "topology_template:\n"
                                  "  node_templates:\n"
                                  "    a:\n"
                                  "      type: my.N\n"
                                  "      properties:\n"
                                  "        x: { concat: [ { get_property: [ SELF, x ] }, "
                                  "{ get_property: [ SELF, x ] } ] }\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, ORC_ETOSCA);
    EXPECT_ERR(&l, "function-cycle", line_of(src, "x: { concat"), NULL);
    assert_true(l.d.errors <= 2);
    unload(&l);
}

/* ---- out of memory ------------------------------------------------------------------ */

/* Loads and plans src in a context whose normative types are loaded already, failing the
 * k-th allocation for k = 0, 1, ... until a run needs no failure. Each run must fail with
 * ORC_ENOMEM, or give what the run without failures gave (a template that loads and plans
 * under memory pressure must not lose anything); nothing may leak. */
static void oom_loop(const char *src)
{
    tosca_options_t o;
    tosca_ctx_t *ctx;
    tosca_diags_t d;
    tosca_template_t *t = NULL;
    json_t *ref = NULL;
    size_t base, ref_count = 0;
    int ref_rc = 0, ref_prc = 0;
    long k;

    oom_begin();
    tosca_options_init(&o);
    tosca_diags_init(&d, false);
    assert_int_equal(tosca_ctx_new(&o, &ctx, &d), 0);
    /* warm up: the normative types stay in the context */
    assert_int_equal(tosca_load_buffer(ctx, "w.yaml", V13, strlen(V13), &t, &d), 0);
    tosca_template_free(t);
    tosca_diags_fini(&d);
    base = oom.live;
    for (k = -1; k < 100000; k++) {
        json_t *plan = NULL;
        int rc, prc = -1;
        t = NULL;
        oom.injected = false;
        oom.left = k;
        rc = tosca_load_buffer(ctx, "t.yaml", src, strlen(src), &t, &d);
        if (rc == 0)
            prc = tosca_plan(t, NULL, &plan, &d);
        oom.left = -1;
        if (k < 0) {
            ref_rc = rc;
            ref_prc = prc;
            ref = plan;
            plan = NULL;
            ref_count = d.count;
        } else if (rc == ORC_ENOMEM || prc == ORC_ENOMEM) {
            assert_true(oom.injected);
        } else {
            if (rc != ref_rc || prc != ref_prc || d.count != ref_count ||
                (plan && !json_equal(plan, ref))) {
                test_print_diags(&d);
                fail_msg("failed allocation %ld: load %s, plan %d, %zu diagnostics; without "
                         "failures: load %s, plan %d, %zu diagnostics",
                         k, orc_err_name(rc), prc, d.count, orc_err_name(ref_rc), ref_prc,
                         ref_count);
            }
        }
        json_decref(plan);
        tosca_template_free(t);
        tosca_diags_fini(&d);
        if (oom.live != base || oom.bad_free)
            fail_msg("failed allocation %ld: %zu blocks leaked, %zu bad frees", k,
                     oom.live - base, oom.bad_free);
        if (k >= 0 && !oom.injected)
            break;
    }
    if (k <= 20)
        fprintf(stderr, "only %ld allocations\n", k);
    assert_true(k > 20);
    json_decref(ref);
    tosca_ctx_free(ctx);
    assert_int_equal(oom.live, 0);
    assert_int_equal(oom.bad_free, 0);
    oom_end();
}

static void oom_load_and_plan(void **state)
{
    char src[4096];

    (void)state;
    snprintf(src, sizeof(src),
             "%stopology_template:\n"
             "  inputs:\n"
             "    user: {type: string, default: bob}\n"
             "  node_templates:\n"
             "    vm:\n"
             "      type: tosca.nodes.Compute\n"
             "      capabilities:\n"
             "        host:\n"
             "          properties: {num_cpus: 4, mem_size: 2 GB}\n"
             "        scalable:\n"
             "          properties: {max_instances: 3, default_instances: 2}\n"
             "    box:\n"
             "      type: my.Box\n"
             "      requirements:\n"
             "        - host: vm\n"
             "    app:\n"
             "      type: my.App\n"
             "      requirements:\n"
             "        - host: box\n"
             "      interfaces:\n"
             "        Standard:\n"
             "          create:\n"
             "            implementation: create.sh\n"
             "            inputs: {user: { get_input: user }}\n"
             "      artifacts:\n"
             "        script: install.sh\n"
             "      properties:\n"
             "        out:\n"
             "          a: { get_property: [ HOST, zone ] }\n"
             "          b: { concat: [ { get_input: user }, { get_attribute: [ SELF, tosca_id ] } ] }\n"
             "  groups:\n"
             "    g: {type: tosca.groups.Root, members: [vm, box]}\n"
             "  outputs:\n"
             "    ip: { value: { get_attribute: [ vm, public_address ] } }\n",
             fn_types);
    oom_loop(src);
    /* a template with errors and warnings: the same diagnostics or ORC_ENOMEM */
    oom_loop(V13 "bogus: 1\n"
                 "data_types:\n"
                 "  my.D:\n"
                 "    derived_from: integer\n"
                 "    constraints: [{in_range: [1, 5]}]\n"
                 "topology_template:\n"
                 "  node_templates:\n"
                 "    net:\n"
                 "      type: tosca.nodes.network.Network\n"
                 "    a:\n"
                 "      type: tosca.nodes.SoftwareComponent\n"
                 "      properties: {colour: red}\n"
                 "      requirements:\n"
                 "        - host: net\n"
                 "        - dependency: b\n"
                 "    b:\n"
                 "      type: tosca.nodes.Root\n"
                 "      requirements:\n"
                 "        - dependency: a\n"
                 "        - dependency: ghost\n"
                 "  outputs:\n"
                 "    o: { value: { get_input: nope } }\n");
}

/* Regression: out of memory while a node type's interface or capability definition is added to
 * its type leaks the definition's list of operations or properties (types.c, add_iface
 * and add_cap: the definition lives in the arena, but its deflist is heap memory that
 * only file_free() releases, through the type's list the definition never joined). */
static void oom_leak_type_definitions(void **state)
{
    (void)state;
    oom_loop(V13 "node_types:\n"
                 "  my.N:\n"
                 "    derived_from: tosca.nodes.Root\n"
                 "    interfaces:\n"
                 "      Standard:\n"
                 "        create: create.sh\n"
                 "topology_template:\n"
                 "  node_templates:\n"
                 "    n:\n"
                 "      type: my.N\n");
    oom_loop(V13 "node_types:\n"
                 "  my.N:\n"
                 "    derived_from: tosca.nodes.Root\n"
                 "    capabilities:\n"
                 "      c:\n"
                 "        type: tosca.capabilities.Node\n"
                 "        properties:\n"
                 "          x: {type: integer, default: 1}\n"
                 "topology_template:\n"
                 "  node_templates:\n"
                 "    n:\n"
                 "      type: my.N\n");
}

/* ---- strict and lenient ------------------------------------------------------------- */

/* The same defects: warnings in lenient mode (the template loads), errors in strict mode
 * (it does not), at the same lines with the same codes. Strict mode may be asked for in
 * the options or in the diagnostics. */
static void strict_and_lenient(void **state)
{
    static const char src[] = V13 "extra_key: 1\n"
                                  "topology_template:\n"
                                  "  node_templates:\n"
                                  "    net:\n"
                                  "      type: tosca.nodes.network.Network\n"
                                  "      colour: red\n"
                                  "    app:\n"
                                  "      type: tosca.nodes.SoftwareComponent\n"
                                  "      properties:\n"
                                  "        speed: 3\n"
                                  "      requirements:\n"
                                  "        - host: net\n"
                                  "        - host: net\n"
                                  "        - runs_on: net\n"
                                  "      interfaces:\n"
                                  "        Standard:\n"
                                  "          explode: x.sh\n"
                                  "  outputs:\n"
                                  "    o: {description: none}\n";
    static const char *const codes[] = {"unknown-key",        "unknown-key",
                                        "unknown-property",   "capability-mismatch",
                                        "occurrences",        "unknown-requirement",
                                        "unknown-operation",  "missing-key"};
    ld_t lenient, strict, strict_diags;
    tosca_options_t o;

    (void)state;
    load(&lenient, src);
    EXPECT_OK(&lenient);
    assert_int_equal(lenient.d.errors, 0);
    load_mode(&strict, src, true);
    EXPECT_FAIL(&strict);
    assert_int_equal(strict.d.warnings, 0);
    tosca_options_init(&o);
    load_opts(&strict_diags, "t.yaml", src, &o, true);
    EXPECT_FAIL(&strict_diags);
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        assert_true(count_code(&lenient.d, codes[i]) > 0);
        assert_int_equal(count_code(&lenient.d, codes[i]), count_code(&strict.d, codes[i]));
    }
    /* same diagnostics, one for one */
    assert_int_equal(lenient.d.count, strict.d.count);
    assert_int_equal(strict.d.count, strict_diags.d.count);
    for (size_t i = 0; i < lenient.d.count; i++) {
        const tosca_diag_t *a = &lenient.d.items[i], *b = &strict.d.items[i],
                           *c = &strict_diags.d.items[i];
        assert_string_equal(a->code, b->code);
        assert_int_equal(a->line, b->line);
        assert_int_equal(a->col, b->col);
        assert_string_equal(a->message, b->message);
        assert_int_equal(a->severity, TOSCA_SEV_WARNING);
        assert_int_equal(b->severity, TOSCA_SEV_ERROR);
        assert_string_equal(b->code, c->code);
        assert_int_equal(b->line, c->line);
        assert_int_equal(c->severity, TOSCA_SEV_ERROR);
    }
    unload(&lenient);
    unload(&strict);
    unload(&strict_diags);
}

/* A broken template with many kinds of problem: each diagnostic has a code and a line,
 * and the JSON form carries the same. */
static void diagnostics_have_lines(void **state)
{
    static const char src[] = V13 "bogus: 1\n"
                                  "data_types:\n"
                                  "  my.D:\n"
                                  "    derived_from: my.Nothing\n"
                                  "    constraints: [{between: [1, 2]}]\n"
                                  "node_types:\n"
                                  "  my.N:\n"
                                  "    derived_from: tosca.nodes.Root\n"
                                  "    properties:\n"
                                  "      p: {type: integer, default: x}\n"
                                  "      q: {type: my.Unknown, required: false}\n"
                                  "    requirements:\n"
                                  "      - r: {capability: my.NoCap}\n"
                                  "topology_template:\n"
                                  "  inputs:\n"
                                  "    i: {type: integer, constraints: [{in_range: [5, 1]}]}\n"
                                  "  node_templates:\n"
                                  "    a:\n"
                                  "      type: my.N\n"
                                  "      properties: [1]\n"
                                  "      requirements: {r: b}\n"
                                  "    b: not-a-map\n"
                                  "    c:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "      interfaces: 3\n"
                                  "      artifacts: [x]\n"
                                  "      capabilities:\n"
                                  "        host:\n"
                                  "          properties:\n"
                                  "            num_cpus: { get_input: zz }\n"
                                  "  groups: [1]\n"
                                  "  policies: 3\n"
                                  "  workflows:\n"
                                  "    w:\n"
                                  "      steps: [1]\n";
    ld_t l;
    json_t *j;
    size_t i;
    json_t *v;

    (void)state;
    load(&l, src);
    EXPECT_FAIL(&l);
    assert_true(l.d.errors >= 10);
    for (size_t k = 0; k < l.d.count; k++) {
        assert_string_equal(l.d.items[k].file, "t.yaml");
        assert_true(l.d.items[k].line > 0 && l.d.items[k].col > 0);
    }
    j = tosca_diags_to_json(&l.d);
    assert_non_null(j);
    assert_int_equal(json_array_size(j), l.d.count);
    json_array_foreach(j, i, v)
    {
        assert_true(json_integer_value(json_object_get(v, "line")) > 0);
        assert_true(json_string_length(json_object_get(v, "code")) > 0);
    }
    json_decref(j);
    /* sorted, they read top to bottom */
    tosca_diags_sort(&l.d);
    for (size_t k = 1; k < l.d.count; k++)
        assert_true(l.d.items[k - 1].line < l.d.items[k].line ||
                    (l.d.items[k - 1].line == l.d.items[k].line &&
                     l.d.items[k - 1].col <= l.d.items[k].col));
    unload(&l);
}

/* Regression: tosca_template_version() is documented as "the tosca_definitions_version of the
 * entry file", but for tosca_simple_profile_for_nfv_1_0 (accepted as the 1.2 grammar) it
 * returns "tosca_simple_yaml_1_2", so the plan misnames the template's version. */
static void nfv_version_string(void **state)
{
    ld_t l;

    (void)state;
    load(&l, "tosca_definitions_version: tosca_simple_profile_for_nfv_1_0\n");
    EXPECT_CLEAN(&l);
    assert_string_equal(tosca_template_version(l.t), "tosca_simple_profile_for_nfv_1_0");
    unload(&l);
}

/* Bad arguments, empty and non-mapping documents. */
static void api_misuse(void **state)
{
    tosca_ctx_t *ctx = NULL;
    tosca_template_t *t = (tosca_template_t *)1;
    tosca_diags_t d;
    json_t *plan = (json_t *)1;

    (void)state;
    tosca_diags_init(&d, false);
    assert_int_equal(tosca_ctx_new(NULL, &ctx, &d), 0);
    assert_int_equal(tosca_load_buffer(ctx, "x.yaml", NULL, 0, &t, &d), ORC_EINVAL);
    assert_int_equal(tosca_load_buffer(NULL, "x.yaml", "a", 1, &t, &d), ORC_EINVAL);
    assert_int_equal(tosca_load_file(ctx, NULL, &t, &d), ORC_EINVAL);
    assert_int_equal(tosca_plan(NULL, NULL, &plan, &d), ORC_EINVAL);
    /* empty and non-mapping documents */
    t = NULL;
    assert_int_equal(tosca_load_buffer(ctx, "x.yaml", "", 0, &t, &d), ORC_ETOSCA);
    assert_null(t);
    assert_non_null(test_find_code(&d, "empty-template"));
    tosca_diags_fini(&d);
    assert_int_equal(tosca_load_buffer(ctx, "x.yaml", "- a\n", 4, &t, &d), ORC_ETOSCA);
    assert_non_null(test_find_code(&d, "expected-map"));
    assert_int_equal(d.items[0].line, 1);
    tosca_diags_fini(&d);
    tosca_template_free(NULL);
    tosca_ctx_free(ctx);
    tosca_ctx_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(versions_load),
        cmocka_unit_test(version_missing),
        cmocka_unit_test(version_unknown),
        cmocka_unit_test(service_template_in_1x),
        cmocka_unit_test(unknown_top_level_key),
        cmocka_unit_test(top_level_template_name),
        cmocka_unit_test(interface_operations_1_0_and_1_3),
        cmocka_unit_test(derived_from_chain),
        cmocka_unit_test(derived_from_unknown),
        cmocka_unit_test(derivation_cycle),
        cmocka_unit_test(duplicate_type),
        cmocka_unit_test(data_type_from_integer),
        cmocka_unit_test(property_default_violates_constraint),
        cmocka_unit_test(complex_data_type_fields),
        cmocka_unit_test(entry_schema_lists_and_maps),
        cmocka_unit_test(unknown_node_type),
        cmocka_unit_test(unknown_and_missing_property),
        cmocka_unit_test(constraint_operators),
        cmocka_unit_test(capability_assignments),
        cmocka_unit_test(requirement_by_node_name),
        cmocka_unit_test(requirement_by_node_type),
        cmocka_unit_test(requirement_unknown_target),
        cmocka_unit_test(requirement_capability_mismatch),
        cmocka_unit_test(requirement_relationships),
        cmocka_unit_test(requirement_occurrences),
        cmocka_unit_test(requirement_unknown_name),
        cmocka_unit_test(interfaces_and_operations),
        cmocka_unit_test(artifacts),
        cmocka_unit_test(copy_node),
        cmocka_unit_test(dependency_cycle),
        cmocka_unit_test(self_host),
        cmocka_unit_test(empty_node_name),
        cmocka_unit_test(groups_and_policies),
        cmocka_unit_test(outputs_without_value),
        cmocka_unit_test(substitution_mappings),
        cmocka_unit_test(workflows),
        cmocka_unit_test(function_checks),
        cmocka_unit_test(function_values),
        cmocka_unit_test(function_values_v2),
        cmocka_unit_test(function_cycle),
        cmocka_unit_test(strict_and_lenient),
        cmocka_unit_test(diagnostics_have_lines),
        cmocka_unit_test(api_misuse),
        cmocka_unit_test(oom_load_and_plan),
        cmocka_unit_test(node_default_vs_data_type_constraint),
        cmocka_unit_test(v2_normative_without_profile),
        cmocka_unit_test(function_cycle_blowup),
        cmocka_unit_test(nfv_version_string),
        cmocka_unit_test(oom_leak_type_definitions),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
