// Types of the generated ajv standalone validator (see test/support/generate-validator.ts).
declare const validate: ((data: unknown) => boolean) & { errors?: unknown[] | null };
export default validate;
export { validate };
