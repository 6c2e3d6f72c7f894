import fp from 'fastify-plugin'
import view from '@fastify/view'
import fastifyStatic from '@fastify/static'
import handlebars from 'handlebars'
import { fileURLToPath } from 'node:url'
import { formatMoney, type Money } from '../domain/money.js'

const VIEWS = fileURLToPath(new URL('../../views/', import.meta.url))

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
  // Formatters built once: toLocale*String with options builds a new Intl formatter per call (~0.1 ms, every table row).
  const dateFormat = new Intl.DateTimeFormat('en-US', { year: 'numeric', month: 'short', day: 'numeric', timeZone: 'UTC' })
  const dateTimeFormat = new Intl.DateTimeFormat('en-US', { month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit', timeZone: 'UTC', timeZoneName: 'short' })
  hbs.registerHelper('date', (value: unknown) => (value instanceof Date ? dateFormat.format(value) : ''))
  hbs.registerHelper('datetime', (value: unknown) => (value instanceof Date ? dateTimeFormat.format(value) : ''))
  // SVG columns grow upward: y = 100 - height.
  hbs.registerHelper('inverse', (value: unknown) => (typeof value === 'number' ? 100 - value : 100))
  hbs.registerHelper('eq', (a: unknown, b: unknown) => a === b)
  await app.register(view, {
    engine: { handlebars: hbs },
    root: VIEWS,
    viewExt: 'hbs',
    options: { partials: { nav: 'partials/nav.hbs' } },
    // Without this every request re-reads and recompiles the templates.
    production,
    defaultContext: { product: 'Settle' }
  })
  await app.register(fastifyStatic, { root: VIEWS + 'assets', prefix: '/assets/', maxAge: production ? '1h' : 0 })
}, { name: 'settle-view' })
