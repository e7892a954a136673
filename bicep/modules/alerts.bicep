// Log search alerts on Application Insights. The connector writes one JSON document per log line
// (src/telemetry/logger.ts) and each metric as a log line "metric <name>" with `metric`, `value`
// and its dimensions (src/telemetry/metrics.ts); both arrive in the `traces` table, possibly after
// a prefix the host adds, so the queries cut the JSON out of `message` before parsing it.

param applicationInsightsId string
param location string
param tags object

@description('Resource id of the action group to notify; empty: the alerts fire in the portal only.')
param actionGroupId string

@description('Throttled send attempts and mailbox looks per 10 minutes that count as throttling, when it lasts 30 minutes.')
param throttlingThreshold int

@description('Failed or retried webhook deliveries per customer in an hour that raise an alert.')
param webhookFailureThreshold int

@description('Failed function invocations per function in 15 minutes that raise an alert.')
param functionErrorThreshold int

var actions = empty(actionGroupId) ? { actionGroups: [] } : { actionGroups: [actionGroupId] }
var onePeriod = { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }

var alerts = [
  {
    name: 'poison-messages'
    displayName: 'Queue messages reached a poison queue'
    description: 'A queue message failed maxDequeueCount times (host.json) and was moved to <queue>-poison. Look at the message in the poison queue and the function\'s exceptions before it; replay it once fixed.'
    severity: 1
    frequency: 'PT5M'
    window: 'PT15M'
    // The Functions host (WebJobs QueueProcessor): "Message has reached MaxDequeueCount of 5. Moving message to queue 'send-mail-poison'."
    // The local host (local/host/queue-listener.ts): "Message <id> moved to "<queue>-poison" without running the function: …".
    query: '''
traces
| where message contains "-poison" and (message has "MaxDequeueCount" or message contains "Moving message to queue" or message contains "moved to")
| extend poisonQueue = extract(@"([a-z0-9-]+-poison)", 1, message)
'''
    dimensions: [ { name: 'poisonQueue', operator: 'Include', values: ['*'] } ]
    aggregation: 'Count'
    measure: ''
    threshold: 0
    periods: onePeriod
  }
  {
    name: 'connections-need-action'
    displayName: 'Connections need someone to act'
    description: 'A connection moved to needs_reauth, needs_admin or app_misconfigured (src/connection-health/token-lifecycle.ts: "connection is <state>"), or an app registration is refused for every connection (src/connection-health/app-health.ts). The log line\'s nextStep says what to do.'
    severity: 2
    frequency: 'PT15M'
    window: 'PT15M'
    query: '''
traces
| where message contains "connection is needs_" or message contains "connection is app_misconfigured" or message contains "app registration misconfigured"
| extend r = parse_json(extract(@"(\{.*\})", 1, message))
| extend state = iff(isempty(tostring(r.to)), "app_misconfigured", tostring(r.to)), customerId = tostring(r.customerId), appId = tostring(r.appId)
'''
    dimensions: [
      { name: 'state', operator: 'Include', values: ['*'] }
      { name: 'customerId', operator: 'Include', values: ['*'] }
    ]
    aggregation: 'Count'
    measure: ''
    threshold: 0
    periods: onePeriod
  }
  {
    name: 'credential-expiring'
    displayName: 'An app registration credential expires within 30 days'
    description: 'The daily credential check (src/connection-health/credential-expiry.ts) found a client secret or certificate that expires within 30 days or has expired. Add a new credential to the app registration, store it, then remove the old one.'
    severity: 2
    frequency: 'PT6H'
    window: 'P1D'
    // The metric app.credential_days_left carries the level; the log lines say the same in words.
    query: '''
traces
| where message contains "app.credential_days_left" or (message contains "app credential: the" and (message contains "expires within" or message contains "has expired"))
| extend r = parse_json(extract(@"(\{.*\})", 1, message))
| where tostring(r.metric) != "app.credential_days_left" or tostring(r.level) in ("warning", "critical", "expired")
| extend appId = tostring(r.appId), daysLeft = toint(coalesce(r.daysLeft, r.value))
'''
    dimensions: [ { name: 'appId', operator: 'Include', values: ['*'] } ]
    aggregation: 'Count'
    measure: ''
    threshold: 0
    periods: onePeriod
  }
  {
    name: 'sustained-throttling'
    displayName: 'Microsoft is throttling the connector for 30 minutes'
    description: 'Send attempts classed throttled (metric send.attempts, outcome throttled) and mailbox looks failing with <transport>_throttled (metric receive.polls) stayed above the threshold for three 10-minute periods.'
    severity: 3
    frequency: 'PT10M'
    window: 'PT10M'
    query: '''
traces
| where message contains "metric send.attempts" or message contains "metric receive.polls"
| extend r = parse_json(extract(@"(\{.*\})", 1, message))
| where (tostring(r.metric) == "send.attempts" and tostring(r.outcome) == "throttled") or (tostring(r.metric) == "receive.polls" and tostring(r.code) endswith "_throttled")
| project timestamp, throttled = todouble(r.value), transport = tostring(r.transport)
'''
    dimensions: [ { name: 'transport', operator: 'Include', values: ['*'] } ]
    aggregation: 'Total'
    measure: 'throttled'
    threshold: throttlingThreshold
    periods: { numberOfEvaluationPeriods: 3, minFailingPeriodsToAlert: 3 }
  }
  {
    name: 'webhook-deliveries-failing'
    displayName: 'Webhook deliveries are failing for a customer'
    description: 'Deliveries to a customer\'s webhook endpoint failed or are being retried (src/events/deliver-event-handler.ts: "webhook delivery failed" / "webhook delivery will be retried"). Check the endpoint; replay the events once it answers.'
    severity: 2
    frequency: 'PT15M'
    window: 'PT1H'
    query: '''
traces
| where message contains "webhook delivery failed" or message contains "webhook delivery will be retried"
| extend r = parse_json(extract(@"(\{.*\})", 1, message))
| extend customerId = tostring(r.customerId), endpointId = tostring(r.endpointId)
'''
    dimensions: [
      { name: 'customerId', operator: 'Include', values: ['*'] }
      { name: 'endpointId', operator: 'Include', values: ['*'] }
    ]
    aggregation: 'Count'
    measure: ''
    threshold: webhookFailureThreshold
    periods: onePeriod
  }
  {
    name: 'function-errors'
    displayName: 'Function invocations are failing'
    description: 'Function invocations ended in an exception (requests with success false). Queue functions throw to be retried, so a few are expected; many mean something is broken.'
    severity: 2
    frequency: 'PT5M'
    window: 'PT15M'
    query: '''
requests
| where success == false
| project timestamp, functionName = operation_Name, resultCode
'''
    dimensions: [ { name: 'functionName', operator: 'Include', values: ['*'] } ]
    aggregation: 'Count'
    measure: ''
    threshold: functionErrorThreshold
    periods: onePeriod
  }
]

resource rules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [
  for alert in alerts: {
    name: 'alert-${alert.name}'
    location: location
    tags: tags
    kind: 'LogAlert'
    properties: {
      displayName: alert.displayName
      description: alert.description
      severity: alert.severity
      enabled: true
      scopes: [applicationInsightsId]
      evaluationFrequency: alert.frequency
      windowSize: alert.window
      autoMitigate: true
      criteria: {
        allOf: [
          {
            query: alert.query
            timeAggregation: alert.aggregation
            metricMeasureColumn: empty(alert.measure) ? null : alert.measure
            operator: 'GreaterThan'
            threshold: alert.threshold
            dimensions: alert.dimensions
            failingPeriods: alert.periods
          }
        ]
      }
      actions: actions
    }
  }
]
