// Azure Database for PostgreSQL Flexible Server: the server, its Microsoft Entra administrator,
// the application database, server parameters, firewall rules and diagnostic logs.
//
// The app connects passwordless: its managed identity is a PostgreSQL role (created once by the Entra
// administrator with pgaadauth_create_principal, see infra/README.md) and the password is an Entra token.
//
// Child resources of a flexible server are applied one after another (dependsOn and @batchSize(1)):
// concurrent updates of the same server fail with "ServerIsBusy"/conflict errors.

param serverName string
param location string
param tags object

@allowed(['16', '17'])
param version string

@description('Compute SKU, e.g. Standard_B2s (Burstable) or Standard_D2ds_v5 (GeneralPurpose).')
param skuName string

@allowed(['Burstable', 'GeneralPurpose', 'MemoryOptimized'])
param skuTier string

@allowed([32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32767])
param storageSizeGB int

@minValue(7)
@maxValue(35)
param backupRetentionDays int

param geoRedundantBackup bool

@description('Guarded in main.bicep: Burstable SKUs offer none.')
@allowed(['Disabled', 'SameZone', 'ZoneRedundant'])
param highAvailability string

@description('max_connections, pinned to the value the app\'s connection budget is computed from (main.bicep maxConnectionsBySku).')
param maxConnections int

@description('\'Enabled\' or \'Disabled\'; decided (and guarded) in main.bicep.')
@allowed(['Enabled', 'Disabled'])
param passwordAuth string

@description('Break-glass password login; used only when passwordAuth is Enabled.')
param administratorLogin string

@secure()
param administratorLoginPassword string

@description('Object id of the Microsoft Entra administrator (a group is recommended).')
param entraAdminObjectId string

@description('Display name of that principal (for a group: the group name, which is also its PostgreSQL role).')
param entraAdminName string

@allowed(['User', 'Group', 'ServicePrincipal'])
param entraAdminType string

param databaseName string

@description('Extensions the application database may create (server parameter azure.extensions).')
param allowedExtensions string[]

@description('Public IPv4 addresses of operators/CI runners allowed to connect (migrations, psql).')
param operatorIpAddresses string[]

@description('Log Analytics workspace for server logs and metrics.')
param workspaceId string

var passwordAuthEnabled = passwordAuth == 'Enabled'

resource server 'Microsoft.DBforPostgreSQL/flexibleServers@2025-08-01' = {
  name: serverName
  location: location
  tags: tags
  sku: {
    name: skuName
    tier: skuTier
  }
  properties: {
    version: version
    administratorLogin: passwordAuthEnabled ? administratorLogin : null
    administratorLoginPassword: passwordAuthEnabled ? administratorLoginPassword : null
    authConfig: {
      activeDirectoryAuth: 'Enabled'
      passwordAuth: passwordAuth
      tenantId: tenant().tenantId
    }
    storage: {
      storageSizeGB: storageSizeGB
      // A full disk turns the server read-only; autogrow doubles the (Premium SSD) disk instead.
      // Left off on Burstable (dev), where a full disk is a signal rather than an outage.
      autoGrow: skuTier == 'Burstable' ? 'Disabled' : 'Enabled'
    }
    backup: {
      backupRetentionDays: backupRetentionDays
      geoRedundantBackup: geoRedundantBackup ? 'Enabled' : 'Disabled' // can only be chosen at creation
    }
    highAvailability: {
      mode: highAvailability
    }
    network: {
      // Public access guarded by firewall rules and Entra ID authentication. The hardened option is
      // VNet integration: a delegated subnet for the server (network.delegatedSubnetResourceId and a
      // private DNS zone, chosen at creation) and Flex Consumption VNet integration for the app
      // (virtualNetworkSubnetId on the site); the 0.0.0.0 rule below then goes away.
      publicNetworkAccess: 'Enabled'
    }
  }
}

resource entraAdmin 'Microsoft.DBforPostgreSQL/flexibleServers/administrators@2025-08-01' = {
  parent: server
  name: entraAdminObjectId
  properties: {
    principalName: entraAdminName
    principalType: entraAdminType
    tenantId: tenant().tenantId
  }
}

resource database 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2025-08-01' = {
  parent: server
  name: databaseName
  properties: {
    charset: 'UTF8'
    collation: 'en_US.utf8'
  }
  dependsOn: [
    entraAdmin
  ]
}

// shared_preload_libraries keeps Azure's default, which on PostgreSQL 16 and later already preloads
// pg_stat_statements (and pg_cron): overriding it would drop what is not listed and need a restart.
var serverParameters = [
  // Pinned: the server keeps the value it had at creation when the SKU changes later, and the app's
  // pool is derived from this number (DB_MAX_CONNECTIONS). A change takes effect after a restart.
  {
    name: 'max_connections'
    value: string(maxConnections)
  }
  {
    name: 'azure.extensions'
    value: join(allowedExtensions, ',')
  }
  // Enhanced metrics, among them longest_query_time_sec, which the slow-query alert watches.
  {
    name: 'metrics.collector_database_activity'
    value: 'on'
  }
]

@batchSize(1)
resource serverParameterSettings 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2025-08-01' = [
  for setting in serverParameters: {
    parent: server
    name: setting.name
    properties: {
      value: setting.value
      source: 'user-override'
    }
    dependsOn: [
      database
    ]
  }
]

// 0.0.0.0 to 0.0.0.0 is Azure's special rule "allow public access from any Azure service": the Flex
// Consumption app has no fixed outbound address without VNet integration. Authentication (Entra tokens,
// TLS required) is what keeps other tenants out; see the VNet note on the server above.
resource allowAzureServices 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2025-08-01' = {
  parent: server
  name: 'AllowAllAzureServicesAndResourcesWithinAzureIps'
  properties: {
    startIpAddress: '0.0.0.0'
    endIpAddress: '0.0.0.0'
  }
  dependsOn: [
    serverParameterSettings
  ]
}

// Named after the address, so a deploy listing another operator's address adds its rule instead of
// overwriting someone else's operator-0. Rules of addresses no longer listed stay until deleted
// (infra/README.md); rules of CI runners (ci-*) are never touched.
@batchSize(1)
resource operatorRules 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2025-08-01' = [
  for ip in operatorIpAddresses: {
    parent: server
    name: 'operator-${replace(ip, '.', '-')}'
    properties: {
      startIpAddress: ip
      endIpAddress: ip
    }
    dependsOn: [
      allowAzureServices
    ]
  }
]

// Server logs (errors, connections, autovacuum) and platform metrics to Log Analytics.
// log_min_duration_statement stays off: slow statements would be logged with their bind parameters.
resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: server
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'PostgreSQLLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output id string = server.id
output name string = server.name
output fqdn string = server.properties.fullyQualifiedDomainName
output databaseName string = database.name
