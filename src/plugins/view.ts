import fp from 'fastify-plugin'
import view from '@fastify/view'
import fastifyStatic from '@fastify/static'
import handlebars from 'handlebars'
import { projectPath } from '../paths.js'
import { formatMoney, type Money } from '../domain/money.js'
import { DEFAULT_LOCALE, formatDay, formatMoment } from '../domain/dates.js'
import { entryKindWords, payoutStateWords } from '../domain/words.js'

const VIEWS = projectPath('views')

const isMoney = (value: unknown): value is Money =>
  typeof value === 'object' && value !== null && 'amount' in value && 'currency' in value

/**
 * Handlebars pages and the stylesheet under /assets. Each render names its
 * layout (Settle's own pages, or the white-label pay page).
 */
export const MAIN_LAYOUT = { layout: 'layouts/main.hbs' } as const

export default fp<{ production: boolean }>(async (app, { production }) => {
  const hbs = handlebars.create()
  hbs.registerHelper('money', (value: unknown) => (isMoney(value) ? formatMoney(value) : '—'))
  // One date style everywhere (src/domain/dates.ts), in the page's locale and time zone when the view model names them.
  const root = (options: unknown): { locale?: unknown, timeZone?: unknown } => (options as { data?: { root?: { locale?: unknown, timeZone?: unknown } } }).data?.root ?? {}
  const localeOf = (options: unknown): string => { const l = root(options).locale; return typeof l === 'string' ? l : DEFAULT_LOCALE }
  const zoneOf = (options: unknown): string => { const z = root(options).timeZone; return typeof z === 'string' ? z : 'UTC' }
  hbs.registerHelper('date', (value: unknown, options: unknown) => (value instanceof Date || typeof value === 'string' ? formatDay(value, localeOf(options)) : ''))
  hbs.registerHelper('datetime', (value: unknown, options: unknown) => (value instanceof Date || typeof value === 'string' ? formatMoment(value, localeOf(options), zoneOf(options)) : ''))
  // SVG columns grow upward: y = 100 - height.
  hbs.registerHelper('inverse', (value: unknown) => (typeof value === 'number' ? 100 - value : 100))
  hbs.registerHelper('eq', (a: unknown, b: unknown) => a === b)
  // Codes in words (src/domain/words.ts), never raw on a page.
  hbs.registerHelper('entryKind', (kind: unknown) => entryKindWords(String(kind ?? '')))
  hbs.registerHelper('payoutState', (status: unknown) => payoutStateWords(String(status ?? '')))
  await app.register(view, {
    engine: { handlebars: hbs },
    root: VIEWS,
    viewExt: 'hbs',
    options: { partials: { nav: 'partials/nav.hbs' } },
    // Without this every request re-reads and recompiles the templates.
    production,
    defaultContext: { product: 'Settle' }
  })
  await app.register(fastifyStatic, { root: projectPath('views', 'assets'), prefix: '/assets/', maxAge: production ? '1h' : 0 })
  // Browsers ask for /favicon.ico whatever the page links: Settle's mark, an SVG (every current browser takes one here).
  app.get('/favicon.ico', async (_request, reply) => await reply.header('cache-control', 'public, max-age=86400').sendFile('favicon.svg'))
}, { name: 'settle-view' })
