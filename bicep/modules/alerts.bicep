// Log search alerts on Application Insights. The connector exports through OpenTelemetry
// (src/telemetry/): its metrics arrive in `customMetrics` (names and dimensions in
// src/telemetry/metric-catalog.ts; `valueSum` is the total over the export interval), its log
// records in `traces` with their fields in `customDimensions`; the Functions host's own lines and
// invocations arrive in `traces` and `requests`.

param applicationInsightsId string
param location string
param tags object

@description('Resource id of the action group to notify; empty: the alerts fire in the portal only.')
param actionGroupId string

@description('Throttling answers from Microsoft per 10 minutes that count as throttling, when it lasts 30 minutes.')
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
    description: 'A connection moved to needs_reauth, needs_admin or app_misconfigured (metric connection.state_transitions), or an app registration is refused for every connection (metric app.misconfigured). The log record "connection is <state>" of that connection carries nextStep: what to do.'
    severity: 2
    frequency: 'PT15M'
    window: 'PT15M'
    query: '''
customMetrics
| where name == "connection.state_transitions" and tostring(customDimensions.to) in ("needs_reauth", "needs_admin", "app_misconfigured")
| project timestamp, transitions = valueSum, state = tostring(customDimensions.to), customerId = tostring(customDimensions.customerId)
| union (customMetrics
    | where name == "app.misconfigured"
    | project timestamp, transitions = valueSum, state = "app_misconfigured", customerId = strcat("app ", tostring(customDimensions.appId)))
'''
    dimensions: [
      { name: 'state', operator: 'Include', values: ['*'] }
      { name: 'customerId', operator: 'Include', values: ['*'] }
    ]
    aggregation: 'Total'
    measure: 'transitions'
    threshold: 0
    periods: onePeriod
  }
  {
    name: 'credential-expiring'
    displayName: 'An app registration credential expires within 30 days'
    description: 'The daily credential check (src/connection-health/credential-expiry.ts, metric app.credential_days_left) found a client secret or certificate that expires within 30 days or has expired. Add a new credential to the app registration, store it, then remove the old one (README: Deployment, rotating credentials).'
    severity: 2
    frequency: 'PT6H'
    window: 'P1D'
    query: '''
customMetrics
| where name == "app.credential_days_left" and tostring(customDimensions.level) in ("warning", "critical", "expired")
| project timestamp, appId = tostring(customDimensions.appId), level = tostring(customDimensions.level), daysLeft = valueMin
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
    description: 'Throttling answers from Microsoft (metric throttle.responses: Graph or Exchange refusing sends and looks, the token endpoint answering 429) stayed above the threshold for three 10-minute periods. The workbook\'s "Top throttled mailboxes" names the mailboxes.'
    severity: 3
    frequency: 'PT10M'
    window: 'PT10M'
    query: '''
customMetrics
| where name == "throttle.responses"
| project timestamp, throttled = valueSum, service = tostring(customDimensions.service)
'''
    dimensions: [ { name: 'service', operator: 'Include', values: ['*'] } ]
    aggregation: 'Total'
    measure: 'throttled'
    threshold: throttlingThreshold
    periods: { numberOfEvaluationPeriods: 3, minFailingPeriodsToAlert: 3 }
  }
  {
    name: 'webhook-deliveries-failing'
    displayName: 'Webhook deliveries are failing for a customer'
    description: 'Deliveries to a webhook endpoint failed or are being retried (metric webhook.deliveries, outcome retry or failed). Check the endpoint; replay the events once it answers.'
    severity: 2
    frequency: 'PT15M'
    window: 'PT1H'
    query: '''
customMetrics
| where name == "webhook.deliveries" and tostring(customDimensions.outcome) in ("retry", "failed")
| project timestamp, failures = valueSum, customerId = tostring(customDimensions.customerId), endpointId = tostring(customDimensions.endpointId)
'''
    dimensions: [
      { name: 'customerId', operator: 'Include', values: ['*'] }
      { name: 'endpointId', operator: 'Include', values: ['*'] }
    ]
    aggregation: 'Total'
    measure: 'failures'
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
