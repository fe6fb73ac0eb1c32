/**
 * The compilers Fastify turns a route's schemas into code with, shared by every
 * Herald in the process, each compiled function kept by its schema's JSON text.
 *
 * Fastify starts a new Ajv for every server it builds, and fast-json-stringify
 * compiles every response schema afresh: each Herald created in one process (an
 * application embedding it, a test suite) compiled the same routes again, about
 * 60% of the CPU its creation took after the first. A compiled function depends
 * on nothing but its schema, the Ajv options and the shared schemas, and
 * herald.ts gives every Herald the same of those.
 *
 * Kept by the schema's JSON text, not by the schema object: some routes build
 * their schema as they are registered, a new object per Herald, and a cache held
 * by object (as Ajv's own is) would keep every one of them for as long as the
 * process runs. JSON leaves out what Ajv and fast-json-stringify do not read
 * either (TypeBox's symbol keys), so equal text compiles to equal code.
 */
import { AjvCompiler, type ValidatorFactory } from '@fastify/ajv-compiler';
import { SerializerSelector, type SerializerFactory } from '@fastify/fast-json-stringify-compiler';

/** Memoises `compile` by the JSON text of the schema it is given. */
function byJsonText<R extends { schema?: unknown }, F>(compile: (route: R) => F, cache: Map<string, F>): (route: R) => F {
  return (route) => {
    const key = JSON.stringify(route.schema);
    let built = cache.get(key);
    if (built === undefined) {
      built = compile(route);
      cache.set(key, built);
    }
    return built;
  };
}

// @fastify/ajv-compiler keeps one Ajv for each set of shared schemas and Ajv
// options, and hands back the same compile function for them every time: the
// cache of what it compiled is kept beside that function.
const ajvPool = AjvCompiler();
const validatorCaches = new WeakMap<object, Map<string, unknown>>();

const buildValidator: ValidatorFactory = (externalSchemas, options) => {
  const compile = ajvPool(externalSchemas, options);
  let cache = validatorCaches.get(compile);
  if (cache === undefined) validatorCaches.set(compile, (cache = new Map()));
  return byJsonText(compile, cache as Map<string, ReturnType<typeof compile>>);
};

// fast-json-stringify's compiler keeps nothing between servers: the cache is
// kept here, one for each set of shared schemas and serializer options.
const serializerSelector = SerializerSelector();
const serializerCaches = new Map<string, Map<string, unknown>>();

const buildSerializer: SerializerFactory = (externalSchemas, serializerOpts) => {
  const compile = serializerSelector(externalSchemas, serializerOpts);
  const poolKey = JSON.stringify([externalSchemas, serializerOpts]);
  let cache = serializerCaches.get(poolKey);
  if (cache === undefined) serializerCaches.set(poolKey, (cache = new Map()));
  return byJsonText(compile, cache as Map<string, ReturnType<typeof compile>>);
};

/** Fastify's `schemaController.compilersFactory` for every Herald (herald.ts). */
export const sharedCompilers = { buildValidator, buildSerializer } as const;
