import { createRequester, UpstreamError } from '../http.js'
import { DEFAULT_CODEBASE, describeConnectWiseError, normaliseCodebase } from './client.js'

/** What the Hosted API's getMemberAuthentication hands the frame. */
export interface HostedMember { companyId: string, memberId: string, memberHash: string, memberContext: string }

/** What a Hosted API member field may hold: it travels as a cookie value, so no separators, controls or spaces. */
export const MEMBER_FIELD_PATTERN = '^[A-Za-z0-9._~+/=%-]{0,512}$'
const MEMBER_FIELD = new RegExp(MEMBER_FIELD_PATTERN)

const cookieValue = (value: string): string => {
  // The route refuses these as the client's mistake; this guards any other caller before the cookie is sent.
  if (value === '' || !MEMBER_FIELD.test(value)) throw new UpstreamError('connectwise', null, 'invalid_member', 'the member data is malformed', false)
  return value
}

/**
 * Proves a Hosted API member is who the frame says by calling ConnectWise
 * as that member: no Basic auth, the cookies `companyName`, `memberHash`,
 * `MemberID`, `MemberContext` and our `clientId`. We call `GET /system/info`
 * (any signed-in member may read it, so no role is needed); a 2xx proves the
 * member, 401/403 means the data was forged or stale. `site` is the tenant's
 * stored site, never the one the frame sent.
 */
export async function verifyHostedMember (options: { site: string, clientId: string, codebase?: string, timeoutMs?: number }, member: HostedMember): Promise<boolean> {
  const requester = createRequester({
    system: 'connectwise',
    baseURL: options.site.replace(/\/+$/, ''),
    headers: { clientId: options.clientId, Accept: 'application/vnd.connectwise.com+json; version=2025.1' },
    timeoutMs: options.timeoutMs ?? 10_000,
    attempts: 2,
    describeError: describeConnectWiseError
  })
  const cookie = [
    `companyName=${cookieValue(member.companyId)}`,
    `memberHash=${cookieValue(member.memberHash)}`,
    `MemberID=${cookieValue(member.memberId)}`,
    `MemberContext=${cookieValue(member.memberContext)}`
  ].join('; ')
  const codebase = options.codebase !== undefined ? normaliseCodebase(options.codebase) : DEFAULT_CODEBASE
  try {
    await requester.request({ method: 'GET', url: `/${codebase}apis/3.0/system/info`, headers: { Cookie: cookie } })
    return true
  } catch (error) {
    if (error instanceof UpstreamError && (error.status === 401 || error.status === 403)) return false
    throw error
  }
}
