// Fails the build when src/schema.d.ts is not what openapi-typescript makes of openapi.json
// (the document the server serves; `c360 openapi > web/openapi.json` refreshes it).
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const out = join(mkdtempSync(join(tmpdir(), 'c360-api-')), 'schema.d.ts')
execFileSync(process.execPath, ['node_modules/openapi-typescript/bin/cli.js', 'openapi.json', '-o', out], { stdio: 'ignore' })
if (readFileSync(out, 'utf8') !== readFileSync('src/schema.d.ts', 'utf8')) {
  console.error('src/schema.d.ts is out of date with openapi.json: run `npm run gen:api` and commit it')
  process.exit(1)
}
console.log('api types: src/schema.d.ts matches openapi.json')
