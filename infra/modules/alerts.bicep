// Alert rules, each on a signal that exists today: the 5xx rate (AppRequests, written by the Functions
// host), and PostgreSQL's own metrics: the longest running query, active connections near
// max_connections, failed connection attempts; and the app's own pool metric db.pool.waiting (exported
// by lib/db-telemetry.ts through OpenTelemetry when APPLICATIONINSIGHTS_CONNECTION_STRING is set).
// Log alerts query the Log Analytics workspace behind Application Insights. skipQueryValidation: on a
// fresh workspace the tables do not exist until the first telemetry arrives, and validation would reject
// the rule.

param namePrefix string
param location string
param tags object

@description('Log Analytics workspace that holds the Application Insights data.')
param workspaceId string

@description('The PostgreSQL flexible server.')
param postgresServerId string

@description('Who is notified. Empty: the rules fire into the portal only.')
param alertEmailAddresses string[]

@description('Alert when more than this percentage of requests in 5 minutes end in a 5xx.')
param http5xxPercentThreshold int

@description('Alert when a statement has been running longer than this many seconds.')
param slowQuerySeconds int

@description('The server\'s max_connections (pinned in postgres.bicep).')
param maxConnections int

@description('Alert when active connections reach this percentage of maxConnections.')
param activeConnectionsPercentThreshold int

@description('Alert when more connection attempts than this fail within 5 minutes.')
param failedConnectionsThreshold int

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmailAddresses)) {
  name: '${namePrefix}-ops'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'aada-ops'
    enabled: true
    emailReceivers: [
      for (address, i) in alertEmailAddresses: {
        name: 'ops-${i}'
        emailAddress: address
        useCommonAlertSchema: true
      }
    ]
  }
}

var actionGroupIds = empty(alertEmailAddresses) ? [] : [actionGroup.id]

// 5xx rate over 5 minutes; quiet periods (under 20 requests) do not count.
var http5xxQuery = '''
AppRequests
| summarize total = count(), failed = countif(toint(ResultCode) >= 500)
| where total >= 20
| extend failedPercent = 100.0 * failed / total
'''

resource http5xxAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-http-5xx-rate'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: '${namePrefix}: HTTP 5xx rate above ${http5xxPercentThreshold}%'
    description: 'More than ${http5xxPercentThreshold}% of API requests in the last 5 minutes answered 5xx. Check exceptions and dependencies in Application Insights.'
    severity: 1
    enabled: true
    scopes: [
      workspaceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: http5xxQuery
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'failedPercent'
          operator: 'GreaterThan'
          threshold: http5xxPercentThreshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    skipQueryValidation: true
    actions: {
      actionGroups: actionGroupIds
    }
  }
}

// The longest-running statement on the server (enhanced metric, enabled by the server parameter
// metrics.collector_database_activity in postgres.bicep). The app's statement_timeout (15 s by default)
// cancels its own queries, so this mostly catches queries near that limit and long admin statements.
// Which statement it was: pg_stat_statements (infra/README.md).
resource slowQueryAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${namePrefix}-slow-queries'
  location: 'global'
  tags: tags
  properties: {
    description: 'A statement has been running for more than ${slowQuerySeconds} s on the PostgreSQL server. Look it up in pg_stat_statements (ordered by mean_exec_time).'
    severity: 2
    enabled: true
    scopes: [
      postgresServerId
    ]
    evaluationFrequency: 'PT1M'
    windowSize: 'PT5M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'LongestQuerySeconds'
          metricNamespace: 'Microsoft.DBforPostgreSQL/flexibleServers'
          metricName: 'longest_query_time_sec'
          operator: 'GreaterThan'
          threshold: slowQuerySeconds
          timeAggregation: 'Maximum'
          skipMetricValidation: true // the metric appears once enhanced metrics are collecting
        }
      ]
    }
    autoMitigate: true
    actions: [
      for id in actionGroupIds: {
        actionGroupId: id
      }
    ]
  }
}

// Connections near the limit: the pools of all instances together (and operators) approach
// max_connections, after which new connections fail. The connection budget keeps the app below it,
// so this fires on a budget that no longer matches the server, or on something else connecting.
resource activeConnectionsAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${namePrefix}-db-active-connections'
  location: 'global'
  tags: tags
  properties: {
    description: 'Active connections on the PostgreSQL server reached ${activeConnectionsPercentThreshold}% of max_connections (${maxConnections}). Check pg_stat_activity by application_name; compare with the dbConnectionBudget output.'
    severity: 2
    enabled: true
    scopes: [
      postgresServerId
    ]
    evaluationFrequency: 'PT1M'
    windowSize: 'PT5M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'ActiveConnections'
          metricNamespace: 'Microsoft.DBforPostgreSQL/flexibleServers'
          metricName: 'active_connections'
          operator: 'GreaterThanOrEqual'
          threshold: maxConnections * activeConnectionsPercentThreshold / 100
          timeAggregation: 'Maximum'
        }
      ]
    }
    autoMitigate: true
    actions: [
      for id in actionGroupIds: {
        actionGroupId: id
      }
    ]
  }
}

// Failed connection attempts: a wrong or missing database role, expired credentials, TLS refused, or
// the server out of connections.
resource failedConnectionsAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${namePrefix}-db-connections-failed'
  location: 'global'
  tags: tags
  properties: {
    description: 'More than ${failedConnectionsThreshold} connection attempts to the PostgreSQL server failed in 5 minutes. The server log (PostgreSQLLogs in Log Analytics) says why: authentication, role, or too many connections.'
    severity: 2
    enabled: true
    scopes: [
      postgresServerId
    ]
    evaluationFrequency: 'PT1M'
    windowSize: 'PT5M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'ConnectionsFailed'
          metricNamespace: 'Microsoft.DBforPostgreSQL/flexibleServers'
          metricName: 'connections_failed'
          operator: 'GreaterThan'
          threshold: failedConnectionsThreshold
          timeAggregation: 'Total'
        }
      ]
    }
    autoMitigate: true
    actions: [
      for id in actionGroupIds: {
        actionGroupId: id
      }
    ]
  }
}

// Pool saturation: an instance whose statements kept waiting for a connection for 5 minutes (app metric
// db.pool.waiting: statements and transactions asked of the pool that no connection runs yet, a gauge
// read once a minute per instance and pool). A gauge row carries its reading as Sum with ItemCount 1
// (the Azure Monitor exporter sends no Min or Max for gauges), hence Sum / ItemCount. At least 3
// samples, so one busy minute does not page anybody.
var poolSaturationQuery = '''
AppMetrics
| where Name == "db.pool.waiting"
| extend pool = tostring(Properties["db.pool.name"])
| summarize waitingAtLeast = min(Sum / ItemCount), samples = count() by AppRoleInstance, pool
| where samples >= 3 and waitingAtLeast > 0
'''

resource poolSaturationAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-db-pool-saturation'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: '${namePrefix}: database pool saturated for 5 minutes'
    description: 'db.pool.waiting stayed above 0 for 5 minutes on at least one instance: queries queue for a connection. Look for slow queries first; then consider a larger SKU (more max_connections, so a larger derived pool) or DB_POOL_MAX within the budget in infra/README.md.'
    severity: 2
    enabled: true
    scopes: [
      workspaceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: poolSaturationQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    skipQueryValidation: true
    actions: {
      actionGroups: actionGroupIds
    }
  }
}
