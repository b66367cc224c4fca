// AADA LMS API: the Azure resources of one environment, deployed into one resource group.
//
//   az deployment group create --resource-group <rg> --parameters infra/parameters/prod.bicepparam
//
// infra/README.md is the runbook: provision, set the secrets, create the database role, migrate, publish.
//
// Reading order: parameters; names; the connection budget (pool size x instances must fit the server);
// the resources; the app settings (every setting the app receives, in one object); outputs.
// Needs Bicep 0.33 or later (fail()).
targetScope = 'resourceGroup'

metadata description = 'AADA LMS API on Azure Functions Flex Consumption with Azure Database for PostgreSQL'

// ---------------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------------

@description('Environment name; part of every resource name.')
@allowed(['dev', 'test', 'prod'])
param environmentName string

param location string = resourceGroup().location

@description('Extra tags for every resource.')
param tags object = {}

// Function app (Flex Consumption)

@description('Most instances Flex Consumption may run for the HTTP functions (one scale group). Every instance holds its own pool, so this divides the database connection budget.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('HTTP instances kept warm (Flex Consumption alwaysReady for the http group). They come on top of maximumInstanceCount in the connection budget.')
@minValue(0)
@maxValue(100)
param httpAlwaysReadyInstances int = 0

@description('Memory of one instance.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Concurrent HTTP invocations per instance (one Node event loop; host.json maxConcurrentRequests matches).')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 16

@description('Browser origins allowed to call the API: the admin portal and the student portal, e.g. https://admin.example.org.')
@minLength(1)
param corsAllowedOrigins string[]

@description('The student portal\'s https base URL; links in emails point at its pages.')
@minLength(9)
param studentPortalUrl string

// PostgreSQL

@description('PostgreSQL major version (16 and later preload pg_stat_statements by default; the server API version 2025-08-01 lists 17).')
@allowed(['16', '17'])
param postgresVersion string = '16'

@description('Compute SKU; must be a key of maxConnectionsBySku below.')
param postgresSkuName string = 'Standard_B2s'

@description('Tier of that SKU: Burstable for Standard_B*, GeneralPurpose for Standard_D*.')
@allowed(['Burstable', 'GeneralPurpose'])
param postgresSkuTier string = 'Burstable'

@allowed([32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32767])
param postgresStorageSizeGB int = 32

@minValue(7)
@maxValue(35)
param postgresBackupRetentionDays int = 7

@description('Geo-redundant backups; can only be chosen when the server is created.')
param postgresGeoRedundantBackup bool = false

@description('High availability (not offered on Burstable).')
@allowed(['Disabled', 'SameZone', 'ZoneRedundant'])
param postgresHighAvailability string = 'Disabled'

@description('Also allow password logins (break-glass). Refused for prod: Microsoft Entra ID only.')
param postgresPasswordAuthEnabled bool = false

param postgresAdminLogin string = 'aada_break_glass'

@description('Password of postgresAdminLogin; required only when postgresPasswordAuthEnabled.')
@secure()
param postgresAdminPassword string = ''

@description('Object id of the PostgreSQL Microsoft Entra administrator (a group of operators is recommended).')
param postgresEntraAdminObjectId string

@description('Display name of that principal; it is also its PostgreSQL role name.')
param postgresEntraAdminName string

@allowed(['User', 'Group', 'ServicePrincipal'])
param postgresEntraAdminType string = 'Group'

@description('Extensions the application database may create (azure.extensions allow-list).')
param postgresAllowedExtensions string[] = ['pg_stat_statements']

@description('Public IPv4 addresses (operators, CI) allowed through the server firewall, for migrations and psql.')
param operatorIpAddresses string[] = []

@description('Pool size per HTTP instance instead of the derived one (0: derived). Refused when it does not fit the budget. Set it here, not by hand: a hand-set DB_POOL_MAX is not checked.')
@minValue(0)
@maxValue(100)
param dbPoolMaxOverride int = 0

@description('Connections kept out of the app\'s budget: the 15 Azure reserves (replication, monitoring) plus headroom for the administrator and migrations.')
@minValue(15)
@maxValue(1000)
param dbReservedConnections int = 25

// Email (Azure Communication Services)

@description('Where Azure Communication Services keeps email data at rest (a geography such as United States or Europe).')
param emailDataLocation string = 'United States'

@description('Resource ids of custom email domains you verified (infra/README.md); linked to the Communication Services resource next to the Azure-managed one.')
param emailCustomDomainIds string[] = []

@description('Sender address on one of emailCustomDomainIds. Empty: DoNotReply@ the Azure-managed domain.')
param emailSenderAddress string = ''

// Key Vault

@description('Optional object id of the operators (group) who set and rotate Key Vault secrets.')
param keyVaultSecretsOfficerPrincipalId string = ''

@allowed(['User', 'Group', 'ServicePrincipal'])
param keyVaultSecretsOfficerPrincipalType string = 'Group'

// Files store

@description('Days a sealed enrollment agreement is kept unchangeable in the files store (five years).')
@minValue(1)
param agreementRetentionDays int = 1826

// Monitoring

@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Application Insights accepts Entra ID-authenticated telemetry only. Turn on once the app\'s OpenTelemetry exporter uses a credential.')
param appInsightsLocalAuthDisabled bool = false

@description('E-mail addresses that receive alerts. Empty: alerts show in the portal only.')
param alertEmailAddresses string[] = []

@minValue(1)
@maxValue(100)
param http5xxPercentThreshold int = 5

@minValue(1)
@maxValue(600)
param slowQuerySeconds int = 5

@description('Alert when the server\'s active connections reach this percentage of max_connections.')
@minValue(10)
@maxValue(100)
param activeConnectionsPercentThreshold int = 80

@description('Alert when more connection attempts than this fail within 5 minutes (authentication, limits).')
@minValue(1)
param failedConnectionsThreshold int = 10

// ---------------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------------

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var baseName = 'aada-lms-${environmentName}'
var functionAppName = 'func-${baseName}-${resourceToken}'
var planName = 'plan-${baseName}'
// The identity's name is also the app's PostgreSQL role (DB_USER).
var identityName = 'id-${baseName}'
var postgresServerName = 'psql-${baseName}-${resourceToken}'
var databaseName = 'aada_lms'
var keyVaultName = 'kv-aada-${environmentName}-${take(resourceToken, 8)}'
var storageAccountName = 'staada${environmentName}${resourceToken}'
// The app's documents (lib/files.ts), apart from the host's storage.
var filesAccountName = 'stdocs${environmentName}${take(resourceToken, 10)}'
var workspaceName = 'log-${baseName}'
var appInsightsName = 'appi-${baseName}'
var emailServiceName = 'ecs-${baseName}'
var communicationServiceName = 'acs-${baseName}-${resourceToken}'
var allTags = union(tags, {
  application: 'aada-lms-api'
  environment: environmentName
})

// ---------------------------------------------------------------------------------------------------
// Connection budget
//
// Flex Consumption scales per function group: the HTTP functions together, up to maximumInstanceCount
// plus the always-ready ones, each instance with one postgres.js pool of poolMax; and every timer on its
// own, one instance at a time (the host runs a timer as a singleton), with a pool of timerPoolMax
// (timerDb in lib/db.ts). In the worst case all of them are up at once:
//   poolMax x httpInstances + timerPoolMax x timerInstances + dbReservedConnections <= max_connections.
// The app derives its pool size from the same app settings with the same formula (derivePoolMax in
// lib/config.ts): floor((DB_MAX_CONNECTIONS - DB_RESERVED_CONNECTIONS - TIMER_INSTANCES x TIMER_POOL_MAX)
// / MAX_INSTANCES), capped at POOL_MAX_CEILING. Keep the two in step; test/infra.test.ts checks that they
// agree, and that timerFunctionNames are the timers the app registers.
// ---------------------------------------------------------------------------------------------------

// Azure's default max_connections per SKU (it follows the SKU's memory). postgres.bicep pins the server
// parameter to this value, so a later SKU change cannot leave the server with a limit the app does not
// know. Azure keeps 15 of them for itself, which dbReservedConnections includes.
var maxConnectionsBySku = {
  Standard_B1ms: 50
  Standard_B2s: 429
  Standard_B2ms: 859
  Standard_D2s_v3: 859
  Standard_D2ds_v5: 859
  Standard_D4s_v3: 1718
  Standard_D4ds_v5: 1718
  Standard_D8s_v3: 3437
  Standard_D8ds_v5: 3437
}

var maxConnections = maxConnectionsBySku[?postgresSkuName] ?? fail('PostgreSQL SKU ${postgresSkuName} has no entry in maxConnectionsBySku (infra/main.bicep): add its default max_connections there.')

// = POOL_MAX_CEILING in lib/config.ts: one Node event loop cannot keep more connections busy.
var poolMaxCeiling = 10

// = TIMER_POOL_MAX in lib/config.ts: a timer runs its statements one at a time.
var timerPoolMax = 2

// The timer functions of functions/ (app.timer), one scale group each.
var timerFunctionNames = ['agreement-reminders', 'audit-retention', 'maintenance', 'outbox-sender', 'refunds-due']

var httpInstances = maximumInstanceCount + httpAlwaysReadyInstances
var timerInstances = length(timerFunctionNames)

// Integer division, as Math.floor in derivePoolMax (a negative numerator gives at most 0: refused below).
var poolMaxPerInstance = (maxConnections - dbReservedConnections - timerInstances * timerPoolMax) / httpInstances

// Deploy-time guard: fails the deployment when the instances cannot each get one connection. The
// identity, the first resource (nothing depends before it), carries the value as a tag, so the guard
// is evaluated before anything else is created.
var poolMax = poolMaxPerInstance >= 1 ? min(poolMaxPerInstance, poolMaxCeiling) : fail('${httpInstances} HTTP instances and ${timerInstances} timers cannot each get a connection from ${postgresSkuName} (max_connections ${maxConnections}, ${dbReservedConnections} reserved): lower maximumInstanceCount or httpAlwaysReadyInstances, or pick a larger SKU.')

// The pool the instances use: the derived one, or the override when it fits the same budget.
var poolMaxApplied = dbPoolMaxOverride == 0 ? poolMax : (dbPoolMaxOverride <= poolMaxPerInstance ? dbPoolMaxOverride : fail('dbPoolMaxOverride ${dbPoolMaxOverride} does not fit: at most ${poolMaxPerInstance} per HTTP instance fits ${postgresSkuName} with ${httpInstances} HTTP instances and ${timerInstances} timers.'))

var expectedPostgresTier = startsWith(postgresSkuName, 'Standard_B') ? 'Burstable' : 'GeneralPurpose'
var postgresTier = postgresSkuTier == expectedPostgresTier ? postgresSkuTier : fail('postgresSkuTier ${postgresSkuTier} does not match ${postgresSkuName} (expected ${expectedPostgresTier}).')

// Burstable servers offer no high availability: refused here rather than by a failed server update.
var postgresHa = postgresHighAvailability == 'Disabled' || postgresTier != 'Burstable' ? postgresHighAvailability : fail('High availability (${postgresHighAvailability}) is not offered on Burstable SKUs (${postgresSkuName}): pick a GeneralPurpose SKU or set postgresHighAvailability to Disabled.')

var postgresPasswordAuthProblem = environmentName == 'prod' ? 'Password authentication stays disabled in prod: sign in with Microsoft Entra ID.' : (empty(postgresAdminPassword) ? 'postgresPasswordAuthEnabled needs postgresAdminPassword.' : '')
var postgresPasswordAuth = !postgresPasswordAuthEnabled ? 'Disabled' : (empty(postgresPasswordAuthProblem) ? 'Enabled' : fail(postgresPasswordAuthProblem))

// ---------------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------------

resource appIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: identityName
  location: location
  tags: union(allTags, {
    'db-pool-max-per-instance': string(poolMaxApplied)
  })
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    workspaceName: workspaceName
    appInsightsName: appInsightsName
    location: location
    tags: allTags
    retentionInDays: logRetentionDays
    localAuthDisabled: appInsightsLocalAuthDisabled
    publisherPrincipalId: appIdentity.properties.principalId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: keyVaultName
    location: location
    tags: allTags
    secretsUserPrincipalId: appIdentity.properties.principalId
    secretsOfficerPrincipalId: keyVaultSecretsOfficerPrincipalId
    secretsOfficerPrincipalType: keyVaultSecretsOfficerPrincipalType
  }
}

module postgres 'modules/postgres.bicep' = {
  name: 'postgres'
  params: {
    serverName: postgresServerName
    location: location
    tags: allTags
    version: postgresVersion
    skuName: postgresSkuName
    skuTier: postgresTier
    storageSizeGB: postgresStorageSizeGB
    backupRetentionDays: postgresBackupRetentionDays
    geoRedundantBackup: postgresGeoRedundantBackup
    highAvailability: postgresHa
    maxConnections: maxConnections
    passwordAuth: postgresPasswordAuth
    administratorLogin: postgresAdminLogin
    administratorLoginPassword: postgresAdminPassword
    entraAdminObjectId: postgresEntraAdminObjectId
    entraAdminName: postgresEntraAdminName
    entraAdminType: postgresEntraAdminType
    databaseName: databaseName
    allowedExtensions: postgresAllowedExtensions
    operatorIpAddresses: operatorIpAddresses
    workspaceId: monitoring.outputs.workspaceId
  }
}

module email 'modules/email.bicep' = {
  name: 'email'
  params: {
    emailServiceName: emailServiceName
    communicationServiceName: communicationServiceName
    tags: allTags
    dataLocation: emailDataLocation
    senderPrincipalId: appIdentity.properties.principalId
    customDomainIds: emailCustomDomainIds
  }
}

module files 'modules/files.bicep' = {
  name: 'files'
  params: {
    name: filesAccountName
    location: location
    tags: allTags
    identityPrincipalId: appIdentity.properties.principalId
    retainedDays: agreementRetentionDays
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    namePrefix: baseName
    location: location
    tags: allTags
    workspaceId: monitoring.outputs.workspaceId
    postgresServerId: postgres.outputs.id
    alertEmailAddresses: alertEmailAddresses
    http5xxPercentThreshold: http5xxPercentThreshold
    slowQuerySeconds: slowQuerySeconds
    maxConnections: maxConnections
    activeConnectionsPercentThreshold: activeConnectionsPercentThreshold
    failedConnectionsThreshold: failedConnectionsThreshold
  }
}

// ---------------------------------------------------------------------------------------------------
// App settings: everything the app receives. lib/config.ts validates them at start-up;
// test/infra.test.ts checks that every name in REQUIRED_IN_PRODUCTION is here.
// Flex Consumption sets the runtime from functionAppConfig: FUNCTIONS_EXTENSION_VERSION,
// FUNCTIONS_WORKER_RUNTIME and WEBSITE_NODE_DEFAULT_VERSION must not be set.
// ---------------------------------------------------------------------------------------------------

var appSettings = {
  // Functions host: identity-based storage and telemetry.
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: appIdentity.properties.clientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${appIdentity.properties.clientId};Authorization=AAD'
  // DefaultAzureCredential (lib/db.ts) picks the user-assigned identity by this client id.
  AZURE_CLIENT_ID: appIdentity.properties.clientId

  // lib/config.ts
  APP_ENV: 'production'
  DB_HOST: postgres.outputs.fqdn
  DB_PORT: '5432'
  DB_NAME: databaseName
  DB_USER: appIdentity.name
  // The server's certificate is checked against Node's roots (Azure's chain ends in DigiCert Global Root G2
  // or Microsoft RSA Root Certificate Authority 2017, both in them) and its host name: with 'require' an
  // interceptor would receive the identity's Entra ID token. lib/config.ts refuses anything else in production.
  DB_SSL: 'verify-full'
  // Direct connections (5432), not the built-in PgBouncer (6432), so prepared statements stay on.
  DB_PREPARE_STATEMENTS: 'true'
  // Empty: derived by the app. Always set, so a removed override is removed from the site as well.
  DB_POOL_MAX: dbPoolMaxOverride == 0 ? '' : string(dbPoolMaxOverride)
  DB_MAX_CONNECTIONS: string(maxConnections)
  DB_RESERVED_CONNECTIONS: string(dbReservedConnections)
  MAX_INSTANCES: string(httpInstances)
  TIMER_INSTANCES: string(timerInstances)
  CORS_ALLOWED_ORIGINS: join(corsAllowedOrigins, ',')
  // Links in emails (registration) point at the student portal.
  APP_PUBLIC_URL: studentPortalUrl
  // The outbox timer sends through Azure Communication Services with the app's identity (modules/email.bicep).
  ACS_EMAIL_ENDPOINT: email.outputs.endpoint
  ACS_EMAIL_SENDER: empty(emailSenderAddress) ? email.outputs.senderAddress : emailSenderAddress
  // The files store (lib/files.ts), reached with the app's identity (modules/files.bicep).
  BLOB_ENDPOINT: files.outputs.blobEndpoint

  // Secrets: Key Vault references, resolved by the platform with the app's identity.
  JWT_SIGNING_KEY: '@Microsoft.KeyVault(VaultName=${keyVault.outputs.name};SecretName=jwt-signing-key)'
  PII_ENCRYPTION_KEYS: '@Microsoft.KeyVault(VaultName=${keyVault.outputs.name};SecretName=pii-encryption-keys)'
  PII_BLIND_INDEX_KEY: '@Microsoft.KeyVault(VaultName=${keyVault.outputs.name};SecretName=pii-blind-index-key)'
  // The school's certificate that seals agreements (a Key Vault certificate: its secret is the PKCS#12).
  PDF_SEAL_CERTIFICATE: '@Microsoft.KeyVault(VaultName=${keyVault.outputs.name};SecretName=pdf-seal-certificate)'
  // Signs the short-lived addresses of H5P activities' files (lib/h5p.ts).
  H5P_ASSET_KEY: '@Microsoft.KeyVault(VaultName=${keyVault.outputs.name};SecretName=h5p-asset-key)'
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    name: functionAppName
    planName: planName
    location: location
    tags: union(allTags, {
      'db-pool-max-per-instance': string(poolMaxApplied)
    })
    storageAccountName: storageAccountName
    identityId: appIdentity.id
    identityPrincipalId: appIdentity.properties.principalId
    maximumInstanceCount: maximumInstanceCount
    httpAlwaysReadyInstances: httpAlwaysReadyInstances
    instanceMemoryMB: instanceMemoryMB
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    // Refers to keyVault.outputs, so the site is configured only after the identity may read secrets.
    appSettings: appSettings
    retainCurrentAppSettings: true
  }
}

// ---------------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------------

output functionAppName string = functionApp.outputs.name
output functionAppHostName string = functionApp.outputs.defaultHostName
output postgresServerName string = postgres.outputs.name
output postgresFqdn string = postgres.outputs.fqdn
output databaseName string = databaseName
@description('PostgreSQL role of the app: create it with pgaadauth_create_principal_with_oid (infra/README.md).')
output databaseUser string = appIdentity.name
@description('Object id of the app\'s managed identity: binds the role to it (display names are not unique in a tenant).')
output databaseUserObjectId string = appIdentity.properties.principalId
output keyVaultName string = keyVault.outputs.name
output filesAccountName string = files.outputs.name
output communicationServiceName string = email.outputs.communicationServiceName
output emailSenderAddress string = empty(emailSenderAddress) ? email.outputs.senderAddress : emailSenderAddress
@description('Pool size each instance derives; the app computes the same from its settings.')
output dbPoolMaxPerInstance int = poolMaxApplied
output dbConnectionBudget object = {
  maxConnections: maxConnections
  reservedConnections: dbReservedConnections
  httpInstances: httpInstances
  poolMaxPerInstance: poolMaxApplied
  timerInstances: timerInstances
  timerPoolMax: timerPoolMax
  worstCaseConnections: poolMaxApplied * httpInstances + timerPoolMax * timerInstances + dbReservedConnections
}
