import t from 'tap'
import { parseBankCsv, parseBankStatement, parseOfx, parseStatementAmount, parseStatementDate } from '../../src/domain/bank-statements.js'

t.test('dates and amounts', async t => {
  t.equal(parseStatementDate('12/03/2026'), '2026-12-03')
  t.equal(parseStatementDate('2026-12-03'), '2026-12-03')
  t.equal(parseStatementDate('20261203120000[-5:EST]'), '2026-12-03')
  t.equal(parseStatementDate('02/30/2026'), null)
  t.equal(parseStatementAmount('$1,234.50', 'USD'), 123_450)
  t.equal(parseStatementAmount('(12.00)', 'USD'), -1_200)
  t.equal(parseStatementAmount('0.1', 'USD'), 10)
  t.equal(parseStatementAmount('1.005', 'USD'), null, 'never rounded')
  t.equal(parseStatementAmount('abc', 'USD'), null)
})

t.test('CSV with Amount column: credits only, header found below a preamble, stable refs', async t => {
  const csv = 'Account 1234,,\n\nDate,Description,Amount,Check Number\n11/02/2026,"DEPOSIT HARBOR DENTAL, INC INV-1042","$1,250.00",\n11/03/2026,FEE,(15.00),\n2026-11-04,CHECK,300.10,5521\n2026-11-04,CHECK,300.10,5521\n'
  const r = parseBankCsv(csv, 'USD')
  t.equal(r.debitsSkipped, 1)
  t.same(r.lines.map(l => [l.receivedOn, l.amount, l.checkNumber, l.line]), [['2026-11-02', 125_000, null, 4], ['2026-11-04', 30_010, '5521', 6], ['2026-11-04', 30_010, '5521', 7]])
  t.equal(r.lines[0]!.memo, 'DEPOSIT HARBOR DENTAL, INC INV-1042')
  t.not(r.lines[1]!.sourceRef, r.lines[2]!.sourceRef, 'identical lines differ by sequence')
  t.same(parseBankCsv(csv, 'USD').lines.map(l => l.sourceRef), r.lines.map(l => l.sourceRef), 'a re-upload yields the same refs')
})

t.test('CSV with Debit/Credit columns and Payee', async t => {
  const r = parseBankCsv('Posted Date,Payee,Memo,Debit,Credit\n11/05/2026,Summit Legal LLC,wire 2044,,980.00\n11/06/2026,Rent,,1200.00,\n', 'USD')
  t.same(r.lines.map(l => [l.amount, l.payer, l.memo]), [[98_000, 'Summit Legal LLC', 'wire 2044']])
  t.equal(r.debitsSkipped, 1)
})

t.test('bad CSV: every bad line named, nothing returned', async t => {
  t.throws(() => parseBankCsv('foo,bar\n1,2\n', 'USD'), { code: 'VALIDATION_FAILED', message: /no header row/ })
  t.throws(() => parseBankCsv('Date,Amount\n13/45/2026,10.00\n11/01/2026,ten\n11/02/2026,1.00\n', 'USD'), { code: 'VALIDATION_FAILED', message: /line 2: date.*line 3: amount/ })
})

const sgml = `OFXHEADER:100
DATA:OFXSGML
<OFX><BANKMSGSRSV1><STMTTRNRS><STMTRS><CURDEF>USD
<BANKTRANLIST>
<STMTTRN>
<TRNTYPE>CREDIT
<DTPOSTED>20261102120000[-5:EST]
<TRNAMT>1250.00
<FITID>2026110201
<NAME>HARBOR DENTAL
<MEMO>INV-1042
<STMTTRN>
<TRNTYPE>DEBIT
<DTPOSTED>20261103
<TRNAMT>-15.00
<FITID>2026110301
</BANKTRANLIST></STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>`

t.test('OFX SGML (QFX): credits with FITID as ref', async t => {
  const r = parseBankStatement(sgml, 'USD')
  t.equal(r.format, 'ofx')
  t.same(r.lines.map(l => [l.sourceRef, l.receivedOn, l.amount, l.payer, l.memo]), [['2026110201', '2026-11-02', 125_000, 'HARBOR DENTAL', 'INV-1042']])
  t.equal(r.debitsSkipped, 1)
})

t.test('OFX XML with CHECKNUM', async t => {
  const xml = `<?xml version="1.0"?><?OFX OFXHEADER="200"?><OFX><BANKMSGSRSV1><STMTTRNRS><STMTRS><CURDEF>CAD</CURDEF><BANKTRANLIST>
<STMTTRN><TRNTYPE>CHECK</TRNTYPE><DTPOSTED>20261105</DTPOSTED><TRNAMT>300.10</TRNAMT><FITID>A1</FITID><CHECKNUM>5521</CHECKNUM><NAME>Summit Legal</NAME></STMTTRN>
</BANKTRANLIST></STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>`
  const r = parseOfx(xml, 'USD')
  t.same(r.lines.map(l => [l.sourceRef, l.amount, l.currency, l.checkNumber, l.memo]), [['A1', 30_010, 'CAD', '5521', null]])
})

t.test('bad OFX', async t => {
  t.throws(() => parseOfx('hello', 'USD'), { code: 'VALIDATION_FAILED', message: /not an OFX/ })
  t.throws(() => parseOfx(sgml.replace('<TRNAMT>1250.00', '<TRNAMT>12,50.x'), 'USD'), { code: 'VALIDATION_FAILED', message: /line 5: TRNAMT/ })
  t.throws(() => parseOfx('<OFX></OFX>', 'USD'), { code: 'VALIDATION_FAILED', message: /no <STMTTRN>/ })
})
