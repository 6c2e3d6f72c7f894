import t from 'tap'
import { matches, parseQuery, sortBy } from '../../../src/sandbox/quickbooks/query.js'

t.test('parses the statements Settle and node-quickbooks send', async t => {
  const q = parseQuery("select * from Invoice where Balance > '0' and CustomerRef = '12' and DocNumber in ('1001', '1002') orderby TxnDate desc, Id startposition 11 maxresults 5")
  t.equal(q.entity, 'Invoice')
  t.equal(q.count, false)
  t.same(q.where, [
    { field: 'Balance', op: '>', value: '0' },
    { field: 'CustomerRef', op: '=', value: '12' },
    { field: 'DocNumber', op: 'in', value: ['1001', '1002'] }
  ])
  t.same(q.orderBy, [{ field: 'TxnDate', desc: true }, { field: 'Id', desc: false }])
  t.equal(q.startPosition, 11)
  t.equal(q.maxResults, 5)
  const c = parseQuery("SELECT COUNT(*) FROM Customer WHERE DisplayName LIKE '%Caf\\'e%' ORDER BY DisplayName")
  t.equal(c.count, true)
  t.same(c.where, [{ field: 'DisplayName', op: 'like', value: "%Caf'e%" }])
  t.same(c.orderBy, [{ field: 'DisplayName', desc: false }])
  t.equal(parseQuery('select * from Payment where TotalAmt >= 10.5').where[0]?.value, '10.5')
  t.equal(parseQuery("select * from Invoice where MetaData.LastUpdatedTime <= '2026-01-01T00:00:00-08:00'").where[0]?.field, 'MetaData.LastUpdatedTime')
})

t.test('rejects what QBO rejects', async t => {
  for (const bad of ['select * from', "select * from Invoice where Balance ~ '1'", "select * from Invoice where DocNumber = 'x", 'select * from Invoice maxresults 1001', 'select * from Invoice where A = 1 or B = 2', 'delete from Invoice']) {
    t.throws(() => parseQuery(bad), { name: 'QuerySyntaxError' }, bad)
  }
})

t.test('evaluates conditions and ordering', async t => {
  const rows = [
    { Id: '2', DocNumber: 'A-2', Balance: 10, CustomerRef: { value: '7' }, TxnDate: '2026-01-02', MetaData: { LastUpdatedTime: '2026-01-02T10:00:00-08:00' } },
    { Id: '10', DocNumber: 'B-1', Balance: 0, CustomerRef: { value: '8' }, TxnDate: '2026-01-01', MetaData: { LastUpdatedTime: '2026-01-01T10:00:00-08:00' } }
  ]
  const where = (s: string): string[] => rows.filter(r => parseQuery(`select * from Invoice where ${s}`).where.every(c => matches(r, c))).map(r => r.Id)
  t.same(where("Balance > '0'"), ['2'])
  t.same(where('Balance = 0'), ['10'])
  t.same(where("CustomerRef = '8'"), ['10'])
  t.same(where("DocNumber like 'a-%'"), ['2'], 'like is case-insensitive')
  t.same(where("DocNumber in ('B-1','C')"), ['10'])
  t.same(where("TxnDate >= '2026-01-02'"), ['2'])
  t.same(where("MetaData.LastUpdatedTime > '2026-01-01T19:00:00Z'"), ['2'], 'offsets are compared as instants')
  t.same(sortBy(rows, []).map(r => r.Id), ['2', '10'], 'Id sorts numerically by default')
  t.same(sortBy(rows, [{ field: 'TxnDate', desc: false }]).map(r => r.Id), ['10', '2'])
})
