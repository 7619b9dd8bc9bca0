export { openDatabase, newDbId, type DamnitDb, type Metameta, type MetaValue, type RunResults } from './database.js';
export { DatabaseFormatError, MIGRATIONS, type Migration, type SchemaState } from './migrations.js';
export { DATA_FORMAT_VERSION } from './schema.js';
export {
  CONFIG_KEYS,
  CONFIG_DEFAULTS,
  findConfigKey,
  closestConfigKey,
  numberSetting,
  stringSetting,
  type ConfigKey,
  type ConfigKeyName,
} from './config-keys.js';
